package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// status --prometheus counted every entry it could not read as corrupt,
// where the worker counts what it sets aside in corrupt/: an entry that
// fails to open for a reason other than its content (here a socket,
// ENXIO: like EMFILE or EIO, the queue leaves it queued and the worker
// never sets it aside) was a corrupt entry only to status --prometheus.
// An entry whose content is not an entry still counts: the worker will
// set it aside.
func TestPrometheusCorruptIsWhatTheWorkerSetsAside(t *testing.T) {
	q, file := mainQueue(t)
	if err := os.MkdirAll(filepath.Join(q.Dir, "entries"), 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(q.Dir, "entries", queue.Key("main", storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "sock-1")))
	if err := syscall.Mknod(sock, syscall.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Peek(filepath.Base(sock)); err == nil || errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("reading the socket: %v, want an error that is not ErrCorrupt", err)
	}
	bad := filepath.Join(q.Dir, "entries", queue.Key("main", storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "bad-1")))
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	if code := e.printMetrics(c, q, false); code != 0 {
		t.Fatalf("printMetrics exited %d:\n%s", code, out)
	}
	if !strings.Contains(out.String(), "\ncachix_filter_hook_corrupt_entries 1\n") {
		t.Errorf("want corrupt_entries 1 (the garbage entry, not the socket):\n%s", out)
	}
}
