package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// lockedListQueue is mainQueue, its worker lock held (no worker runs),
// with one package list the hook could not read recorded in lists/.
func lockedListQueue(t *testing.T) (q *queue.Queue, file string, list storepath.Path) {
	t.Helper()
	q, file = mainQueue(t)
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("AcquireWorker = %v, %v", lock, err)
	}
	t.Cleanup(func() { lock.Unlock() })
	list = storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "cachix-packages-dev")
	if err := q.AddUnreadList(list, "package list cannot be read now: input/output error", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	return q, file, list
}

// A list the worker is still to read again is work left: wait said
// "nothing to push" and returned while what it names was not queued yet.
func TestWaitCountsUnreadLists(t *testing.T) {
	q, file, _ := lockedListQueue(t)
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{timeout: 300 * time.Millisecond, poll: 50 * time.Millisecond, quiet: true})
	if r.end != waitTimedOut || !strings.Contains(out.String(), "1 package list not read again yet") {
		t.Errorf("wait ended %v, says:\n%s\nwant it to time out on the list", r.end, out)
	}
}

// A list whose read failed and waits for its back-off counts as failing,
// as a backed-off entry does: wait --keep-trying's opposite gives up and
// names it with its last error.
func TestWaitGiveUpFailingListsOnly(t *testing.T) {
	q, file, list := lockedListQueue(t)
	u, err := q.ReadUnreadList(list.Hash)
	if err != nil {
		t.Fatal(err)
	}
	u.Attempts, u.NextAttempt = 1, time.Now().Add(time.Hour)
	if err := q.UpdateUnreadList(u); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: time.Minute, quiet: true})
	if r.end != waitFailing || !strings.Contains(out.String(), "every package list left could not be read again") || strings.Contains(out.String(), "every pin") ||
		!strings.Contains(out.String(), list.String()+": 1 failed reads, last: package list cannot be read now: input/output error") {
		t.Errorf("wait ended %v, says:\n%s\nwant it to say every package list left has failed, and name it", r.end, out)
	}
}

// doctor counts a list waiting in lists/ as work left: with no worker it
// said "nothing to push" while what the list names was not queued.
func TestDoctorUnreadListStale(t *testing.T) {
	q, file := mainQueue(t)
	list := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "cachix-packages-dev")
	if err := q.AddUnreadList(list, "cannot be read now", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	w := doctorWorkerCheck(t, file)
	if w == nil || w.Level != checkProblem || !strings.Contains(w.Message, "stale: 0 entries and 1 package list to read again queued") {
		t.Errorf("worker check = %+v, want stale with the list", w)
	}
}

// A list whose read failed and waits for a back-off is failing, as an
// entry is: doctor said "running" of a worker that cannot read it.
func TestDoctorUnreadListFailing(t *testing.T) {
	q, file, list := lockedListQueue(t)
	u, err := q.ReadUnreadList(list.Hash)
	if err != nil {
		t.Fatal(err)
	}
	u.Attempts, u.NextAttempt, u.LastError = 3, time.Now().Add(time.Hour), "input/output error"
	if err := q.UpdateUnreadList(u); err != nil {
		t.Fatal(err)
	}
	w := doctorWorkerCheck(t, file)
	if w == nil || w.Level != checkProblem || !strings.Contains(w.Message, "1 package list (unreadable) failing; last: "+list.String()+": 3 failed reads, last: input/output error") {
		t.Errorf("worker check = %+v, want the list failing", w)
	}
}

// A list whose read failed, its record not rewritten (a full disk: the
// worker keeps the back-off in memory): wait went by the record alone,
// took the list for one not tried yet, and held until the worker
// dropped it, hours later, or for ever. It counts it failing.
func TestWaitGiveUpFailingListRecordNotWritten(t *testing.T) {
	q, file, list := lockedListQueue(t)
	u, err := q.ReadUnreadList(list.Hash)
	if err != nil {
		t.Fatal(err)
	}
	// No room for a new file: tmp/, where every record is written
	// first, is not a directory.
	tmp := filepath.Join(q.Dir, "tmp")
	if err := os.Rename(tmp, tmp+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	u.Attempts, u.NextAttempt = 1, time.Now().Add(time.Hour)
	if err := q.UpdateUnreadList(u); err == nil {
		t.Fatal("UpdateUnreadList with tmp/ not a directory: no error")
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp+".away", tmp); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: 2 * time.Second, poll: 50 * time.Millisecond, quiet: true})
	if r.end != waitFailing || !strings.Contains(out.String(), "every package list left could not be read again") {
		t.Errorf("wait ended %v, says:\n%s\nwant it to give up on the list that waits for its back-off", r.end, out)
	}
}
