package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// status --prometheus counted every entry it could not read as corrupt,
// where the worker counts what it sets aside in corrupt/: an entry that
// fails to open for a reason of the moment (here a lease another holds
// on it, EWOULDBLOCK: like EMFILE or EIO, the queue leaves it queued and
// the worker never sets it aside) was a corrupt entry only to status
// --prometheus. An entry whose content is not an entry still counts, and
// a socket: the worker will set them aside.
func TestPrometheusCorruptIsWhatTheWorkerSetsAside(t *testing.T) {
	q, file := mainQueue(t)
	held := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "held-1")
	if _, err := q.Add([]queue.Pair{{Target: "main", Path: held}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	leased(t, filepath.Join(q.Dir, "entries", queue.Key("main", held)))
	if _, err := q.Peek(queue.Key("main", held)); err == nil || errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("reading the leased entry: %v, want an error that is not ErrCorrupt", err)
	}
	bad := filepath.Join(q.Dir, "entries", queue.Key("main", storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "bad-1")))
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(q.Dir, "entries", queue.Key("main", storepath.New(storepath.StoreDir(), "2123456789abcdfghijklmnpqrsvwxyz", "sock-1")))
	if err := syscall.Mknod(sock, syscall.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	if code := e.printMetrics(c, q, false); code != 0 {
		t.Fatalf("printMetrics exited %d:\n%s", code, out)
	}
	if !strings.Contains(out.String(), "\ncachix_filter_hook_corrupt_entries 2\n") {
		t.Errorf("want corrupt_entries 2 (the garbage entry and the socket, not the leased one):\n%s", out)
	}
}

// A pin's last error is what cachix pin printed, several lines of it:
// status printed it as it is, and its lines after the first stood apart
// from the pin, as lines of status's own (one can read "main (cachix
// main): 0 pending"). It is kept on the pin's line, as a failure's in
// the last errors is.
func TestStatusPinErrorOnItsLine(t *testing.T) {
	var out strings.Builder
	ts := &targetStatus{Name: "main", Pins: []pinStatus{{Path: "/nix/store/x-sys", Name: "sys", Attempts: 1,
		LastError: "cachix exited with exit status 1:\nmain (cachix main): 0 pending, 0 failing\x1b[2J"}}}
	printPins(&out, ts, 0)
	if got := strings.Count(out.String(), "\n"); got != 1 || strings.Contains(out.String(), "\x1b") {
		t.Errorf("printPins wrote %d lines, want 1 with its controls escaped:\n%s", got, out.String())
	}
}

// A failing entry's error stays on its line too: a pusher's output can
// hold lines that read as status's own, and terminal controls.
func TestStatusFailingErrorOnItsLine(t *testing.T) {
	var out strings.Builder
	st := &queueStatus{Queue: "/q", Targets: []*targetStatus{{Name: "main", Destination: "cachix main", Pending: 1, Failing: 1,
		Failures: []failingEntry{{Path: "/nix/store/x-app", Attempts: 1, LastError: "cachix exited with exit status 1:\nmain (cachix main): 0 pending, 0 failing\x1b[2J"}}}}}
	st.print(&out)
	var line string
	targets := 0
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "  failing /nix/store/x-app") {
			line = l
		}
		if strings.HasPrefix(l, "main (cachix main)") {
			targets++
		}
	}
	if !strings.Contains(line, "0 pending, 0 failing") || targets != 1 || strings.Contains(out.String(), "\x1b") {
		t.Errorf("status printed the failing entry's error over several lines or with its controls:\n%s", out.String())
	}
}
