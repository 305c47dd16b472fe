package hook

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// A bulk write that fails after its first chunk (8 MiB) has queued that
// chunk's pairs: the worker pushes them, so the line says they were
// queued, and the error counts only the paths that were not. The fault is
// a file size limit (RLIMIT_FSIZE) that the first chunk's file fits and
// the second's does not, as a disk that fills up between the two.
func TestEnqueueChunkFailsAfterTheFirst(t *testing.T) {
	isolate(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfg, err := config.Load(writeConf(t, conf{queueDir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	sel := chunkedSelection(t, cfg)
	err = enqueuePastFirstChunk(t, cfg, &sel)
	if err == nil {
		t.Fatal("Enqueue succeeded past the file size limit")
	}
	entries, bad, lerr := (&queue.Queue{Dir: dir}).List()
	if lerr != nil || len(bad) > 0 {
		t.Fatalf("List: %v, %d bad", lerr, len(bad))
	}
	queued := len(entries)
	if queued == 0 || queued == chunkedPairs {
		t.Fatalf("%d entries queued, want the first chunk's", queued)
	}
	if want := fmt.Sprintf("could not queue %d paths for mycache, they will not be pushed there", chunkedPairs-queued); !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to say %q", err, want)
	}
	if got, want := sel.Summary(), fmt.Sprintf("queued %d of %d paths for mycache", queued, chunkedPairs); got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

// When a bulk write fails after its first chunk and no worker can be
// started either, the error still says which paths were not queued: it
// said only "queued, but could not start a worker", and the paths after
// the first chunk, which will never be pushed, went unsaid. The worker
// cannot start because its lock is a symbolic link (opened O_NOFOLLOW).
func TestEnqueueChunkFailsAndNoWorker(t *testing.T) {
	isolate(t)
	dir := filepath.Join(t.TempDir(), "queue")
	if _, err := queue.Open(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "none"), filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(writeConf(t, conf{queueDir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	sel := chunkedSelection(t, cfg)
	err = enqueuePastFirstChunk(t, cfg, &sel)
	entries, _, lerr := (&queue.Queue{Dir: dir}).List()
	if lerr != nil || len(entries) == 0 || len(entries) == chunkedPairs {
		t.Fatalf("List: %v, %d entries, want the first chunk's", lerr, len(entries))
	}
	if err == nil || !strings.Contains(err.Error(), "could not start a worker") {
		t.Fatalf("Enqueue = %v, want the worker's failure said", err)
	}
	if want := fmt.Sprintf("could not queue %d paths for mycache, they will not be pushed there", chunkedPairs-len(entries)); !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to say %q", err, want)
	}
}

// chunkedPairs is the number of pairs chunkedSelection makes.
const chunkedPairs = 560

// chunkedSelection selects chunkedPairs paths for mycache, with lines of about
// 30,012 bytes (Within makes them long; the time queued takes 20 to 30
// of them): the first chunk is 280 lines, at most 8 MiB + 16,152 bytes;
// the second 279 lines, less than 8 MiB, and the last line, of 60,000
// bytes, past the limit enqueuePastFirstChunk sets. Every line is
// shorter than an entry can be (64 KiB).
func chunkedSelection(t *testing.T, cfg *config.Config) Selection {
	t.Helper()
	names := make([]string, chunkedPairs)
	for i := range names {
		names[i] = fmt.Sprintf("hello-%03d", i)
	}
	sel := Select(cfg, mkPaths(names...))
	if len(sel.Pairs) != chunkedPairs {
		t.Fatalf("%d pairs, want %d", len(sel.Pairs), chunkedPairs)
	}
	base := len(`{"target":"mycache","path":"`) + len(sel.Pairs[0].Path.String()) + len(`","queued":"`) + 25 + len(`","within":"`) + len(`"}`+"\n")
	within := "/" + strings.Repeat("w", 30012-base-1)
	for i := range sel.Pairs {
		sel.Pairs[i].Within = within
	}
	sel.Pairs[chunkedPairs-1].Within = "/" + strings.Repeat("w", 60000-base-1)
	return sel
}

// enqueuePastFirstChunk runs Enqueue under a file size limit (RLIMIT_FSIZE)
// of 8 MiB + 30 KiB: the first chunk's file fits, the second's does not,
// as a disk that fills up between the two.
func enqueuePastFirstChunk(t *testing.T, cfg *config.Config, sel *Selection) error {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 8<<20 + 30<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot limit file sizes: %v", err)
	}
	err := Enqueue(cfg, sel, true)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	return err
}
