package safeopen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// within fails the test if f does not return in time: the defect is a
// blocking open, which would otherwise hang the test binary.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(eventually.Left(t)):
		t.Fatal("blocked: the open waits for a writer")
		return nil
	}
}

func TestFIFORefusedAtOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []Options{{}, {NoFollow: true, MaxSize: 10}} {
		err := within(t, func() error { _, err := ReadFile(p, opt); return err })
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "FIFO") {
			t.Errorf("ReadFile(fifo, %+v) = %v; want a refusal naming the file and saying FIFO", opt, err)
		}
	}
}

func TestNotRegular(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for p, what := range map[string]string{dir: "directory", "/dev/zero": "character device"} {
		err := within(t, func() error { _, err := ReadFile(p, Options{}); return err })
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), what) {
			t.Errorf("ReadFile(%s) = %v; want refusal saying %q", p, err, what)
		}
	}
	// A socket cannot be opened at all (ENXIO): an error, not a block.
	if err := within(t, func() error { _, err := ReadFile(sock, Options{}); return err }); err == nil {
		t.Errorf("ReadFile(socket) succeeded")
	}
}

func TestSizeLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(p, Options{MaxSize: 10}); err != nil || string(b) != "0123456789" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	b, err := ReadFile(p, Options{MaxSize: 9})
	if !errors.Is(err, ErrTooLarge) || b != nil || !strings.Contains(err.Error(), "limit is 9 bytes") || !strings.Contains(err.Error(), p) {
		t.Errorf("over the limit: %q, %v; want an error naming the file and the limit, no data", b, err)
	}
	if b, err := ReadFile(p, Options{}); err != nil || len(b) != 10 {
		t.Errorf("no limit: %q, %v", b, err)
	}
}

func TestNoFollow(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(link, Options{NoFollow: true}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("NoFollow on a symlink: %v", err)
	}
	if b, err := ReadFile(link, Options{}); err != nil || string(b) != "x" {
		t.Errorf("following a symlink: %q, %v", b, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

func TestOpenReturnsReadableFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, fi, err := Open(p, Options{NoFollow: true, MaxSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 10)
	n, err := f.Read(buf)
	if err != nil || string(buf[:n]) != "hello" || fi.Size() != 5 {
		t.Errorf("read %q, %v, size %d", buf[:n], err, fi.Size())
	}
}
