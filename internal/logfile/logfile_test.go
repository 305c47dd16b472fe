package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func write(t *testing.T, l *File, s string) {
	t.Helper()
	if n, err := l.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCreateMode(t *testing.T) {
	// Even with a permissive umask, the log is private. (The directory
	// is made first: one others can write fails the trust rule.)
	path := filepath.Join(t.TempDir(), "worker.log")
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	l, err := Open(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if m := mode(t, path); m != 0o600 {
		t.Errorf("log mode %04o, want 0600", m)
	}
}

func TestAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.log")
	if err := os.WriteFile(path, []byte("from before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	write(t, l, "one\n")
	write(t, l, "two\n")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	write(t, l, "three\n")
	l.Close()
	if got := read(t, path); got != "from before\none\ntwo\nthree\n" {
		t.Errorf("log = %q", got)
	}
	if _, err := os.Stat(path + ".1"); err == nil {
		t.Error("rotated although under max size")
	}
}

func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.log")
	l, err := Open(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write(t, l, "aaaa\n")
	write(t, l, "bbbb\n") // exactly 10: no rotation yet
	if _, err := os.Stat(path + ".1"); err == nil {
		t.Fatal("rotated at exactly max size")
	}
	write(t, l, "cccc\n") // past 10: rotate first
	if got := read(t, path+".1"); got != "aaaa\nbbbb\n" {
		t.Errorf(".1 = %q", got)
	}
	if got := read(t, path); got != "cccc\n" {
		t.Errorf("log after rotation = %q", got)
	}
	for _, p := range []string{path, path + ".1"} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", p, m)
		}
	}
	// Rotating again replaces .1: one old file is kept, no more.
	write(t, l, "dddd\n")
	write(t, l, "eeee\n")
	if got := read(t, path+".1"); got != "cccc\ndddd\n" {
		t.Errorf(".1 after second rotation = %q", got)
	}
	if got := read(t, path); got != "eeee\n" {
		t.Errorf("log after second rotation = %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("%d files in the log directory, want 2", len(entries))
	}
}

func TestRotationCountsExistingSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.log")
	if err := os.WriteFile(path, []byte("123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, 12)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write(t, l, "abc\n")
	if got := read(t, path+".1"); got != "123456789\n" {
		t.Errorf(".1 = %q, want the file's earlier content", got)
	}
	if got := read(t, path); got != "abc\n" {
		t.Errorf("log = %q", got)
	}
}

func TestLargeWriteIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.log")
	l, err := Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := strings.Repeat("x", 500) + "\n"
	write(t, l, big) // reports the whole write done
	got := read(t, path)
	if len(got) != 100 || !strings.HasPrefix(got, "xxxx") || !strings.HasSuffix(got, "…[cut at log.max_size]\n") {
		t.Errorf("log = %q (%d bytes), want the write cut to 100 bytes", got, len(got))
	}
	write(t, l, "next\n")
	if got := read(t, path+".1"); len(got) != 100 {
		t.Errorf(".1 = %d bytes", len(got))
	}
	if got := read(t, path); got != "next\n" {
		t.Errorf("log = %q", got)
	}
	// A tiny limit still bounds the file.
	l2, err := Open(filepath.Join(t.TempDir(), "tiny.log"), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	write(t, l2, big)
	if got := read(t, filepath.Join(filepath.Dir(l2.path), "tiny.log")); got != "xxxxxxxxx\n" {
		t.Errorf("tiny log = %q", got)
	}
}

// A write past the size was cut at a byte count, which could fall inside
// a UTF-8 character (the log then held half of it) or inside an escape
// logrus's %q wrote ("\x1…", which reads as other text). The cut comes
// before either.
func TestLargeWriteCutKeepsCharactersAndEscapesWhole(t *testing.T) {
	const mark = "…[cut at log.max_size]\n"
	for _, unit := range []string{`\x1b`, `\u202e`, `\\`, "日", "🙂"} {
		for _, pre := range []string{"", "x", "xx", "xxx"} {
			path := filepath.Join(t.TempDir(), "worker.log")
			l, err := Open(path, 100)
			if err != nil {
				t.Fatal(err)
			}
			write(t, l, pre+strings.Repeat(unit, 100)+"\n")
			l.Close()
			got := read(t, path)
			kept, ok := strings.CutSuffix(got, mark)
			// Whole units only, as many as fit (a run of
			// backslashes, which cannot be told apart, is cut
			// before all of it).
			least := 100 - len(mark) - len(unit) + 1
			if unit == `\\` {
				least = len(pre)
			}
			if !ok || len(got) > 100 || !utf8.ValidString(got) || !strings.HasPrefix(kept, pre) ||
				strings.ReplaceAll(kept[len(pre):], unit, "") != "" || len(kept) < least {
				t.Errorf("a write of %q then %q cut to %q (%d bytes)", pre, unit, got, len(got))
			}
		}
	}
}

// TestBoundedWhateverTheInput writes 50 MiB in writes of every size,
// one of them 20 MiB: the two files never hold more than twice the limit.
func TestBoundedWhateverTheInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.log")
	const max = 1 << 20
	l, err := Open(path, max)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, n := range []int{10, 1 << 20, 20 << 20, 3, 999_999, 5 << 20} {
		write(t, l, strings.Repeat("y", n))
		total := int64(0)
		for _, f := range []string{path, path + ".1"} {
			if fi, err := os.Stat(f); err == nil {
				if fi.Size() > max {
					t.Errorf("after a write of %d bytes, %s is %d bytes", n, f, fi.Size())
				}
				total += fi.Size()
			}
		}
		if total > 2*max {
			t.Errorf("after a write of %d bytes the log files hold %d bytes", n, total)
		}
	}
}

func TestConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.log")
	l, err := Open(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := fmt.Fprintf(l, "goroutine %d line %02d\n", g, i); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	// Lines are never torn, and the current file stays within the limit.
	cur := read(t, path)
	if len(cur) > 1000 {
		t.Errorf("log is %d bytes, max 1000", len(cur))
	}
	for _, f := range []string{cur, read(t, path+".1")} {
		for _, line := range strings.Split(strings.TrimSuffix(f, "\n"), "\n") {
			var g, i int
			if n, err := fmt.Sscanf(line, "goroutine %d line %02d", &g, &i); n != 2 || err != nil {
				t.Errorf("torn line %q", line)
			}
		}
	}
}

func TestOpenFails(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "worker.log"), 10); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestRotationFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.log")
	l, err := Open(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write(t, l, "1234\n")
	// A directory in the way of .1 makes the rename fail.
	if err := os.Mkdir(path+".1", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path+".1", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write([]byte("more\n")); err == nil || !strings.Contains(err.Error(), "rotating log") {
		t.Errorf("Write with rotation impossible = %v, want a rotation error", err)
	}
}

// Check says what Open would meet, without creating anything: a missing
// directory, a FIFO, a directory in its place, a directory others can
// write; a file that can be made, or appended to, passes.
func TestCheck(t *testing.T) {
	d := t.TempDir()
	fifo := filepath.Join(d, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(d, "dir.log"), 0o755)
	open := filepath.Join(d, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	existing := filepath.Join(d, "existing.log")
	os.WriteFile(existing, nil, 0o600)
	for _, c := range []struct {
		path, want string
	}{
		{filepath.Join(d, "missing", "worker.log"), "does not exist"},
		{fifo, "not a regular file (it is a FIFO)"},
		{filepath.Join(d, "dir.log"), "not a regular file (it is a directory)"},
		{filepath.Join(open, "worker.log"), "writable by group or others"},
		{filepath.Join(d, "new.log"), ""},
		{existing, ""},
	} {
		err := Check(c.path)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Check(%s) = %v, want %q", c.path, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "new.log")); err == nil {
		t.Error("Check created the file")
	}
}

// As root, a log file another user owns is not appended to: what the
// worker logs would go to them.
func TestOpenRefusesAnotherUsersLog(t *testing.T) {
	u := testuser.New(t)
	path := filepath.Join(t.TempDir(), "worker.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, path)
	if l, err := Open(path, 1<<20); err == nil || !strings.Contains(err.Error(), "owned by "+u.Name) {
		t.Errorf("Open of %s's file: %v", u.Name, err)
		if l != nil {
			l.Close()
		}
	}
}

// A new file that cannot be made after the rotation (a full disk, no
// inodes left, a directory that fails the trust rule for a while) fails
// that write; once it can be made, the log goes on, without rotating a
// file that is no longer there.
func TestReopenAfterFailedRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "worker.log")
	l, err := Open(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write(t, l, "1234\n")
	// The rename to .1 succeeds; the new file is refused.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write([]byte("lost\n")); err == nil {
		t.Fatal("Write succeeded with the new file refused")
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, l, "next\n")
	if got := read(t, path); got != "next\n" {
		t.Errorf("log = %q, want the write after the failure", got)
	}
	if got := read(t, path+".1"); got != "1234\n" {
		t.Errorf(".1 = %q, want the file rotated before the failure", got)
	}
}
