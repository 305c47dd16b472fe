package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// forget removes the pins of removed targets (or of --target T) with their
// entries, and leaves the others.
func TestForgetPins(t *testing.T) {
	q, file := mainQueue(t)
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	if _, err := q.AddPins([]queue.Pin{
		{Target: "main", Path: root.String(), Name: "sys"},
		{Target: "removed", Path: root.String(), Name: "sys"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	forgetsRemovedPin(t, file, root)
	pins, _, _ := q.ListPins()
	if len(pins) != 1 || pins[0].Target != "main" {
		t.Errorf("pins left: %+v", pins)
	}
}

// push --pin --wait exits 3 (wait's "not sent") naming a pin the worker
// gave up on, and 0 for one it made (issue 23 with issue 18's exit codes).
func TestWaitPinGivenUp(t *testing.T) {
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	for _, tc := range []struct {
		outcome, says string
		code          int
	}{
		{history.PinDropped, `not pinned ` + root.String() + ` in main ("sys"): its root was dropped: denied`, exitNotSent},
		{history.Pinned, `pinned ` + root.String() + ` in main as "sys"`, exitOK},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			q, file := mainQueue(t)
			since := time.Now().Add(-time.Second)
			// As push does: the history read from before the pin is
			// queued, so that an outcome written before the wait
			// begins is seen.
			follow := history.Follow(q.Dir)
			if err := history.Append(q.Dir, 1<<20, []history.Record{{Time: time.Now(), Target: "main", Path: root.String(), Outcome: tc.outcome, Reason: "its root was dropped: denied", Pin: `"sys"`}}); err != nil {
				t.Fatal(err)
			}
			e, c, out := loadedEnv(t, file)
			r := e.waitQueue(c, q, waitSpec{pairs: []queue.Pair{}, pins: []string{queue.PinKey("main", root, "sys")}, since: since, follow: follow, timeout: time.Minute})
			if code := r.exitCode(false); code != tc.code || !strings.Contains(out.String(), tc.says) {
				t.Errorf("exit %d (want %d), says:\n%s\nwant %q", code, tc.code, out, tc.says)
			}
		})
	}
}

// wait (the whole queue) waits for the pins too, and a pin the worker
// gave up on while it waited exits 3 naming it, as for push --pin --wait
// (README's exit codes): it exited 0 and said nothing of the pin.
func TestWaitWholeQueuePinGivenUp(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	e, c, out := loadedEnv(t, file)
	looked := 0
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: 30 * time.Second, poll: 20 * time.Millisecond, looked: func() {
		// After the first look, the worker gives the pin up: its
		// outcome first, then its file goes.
		if looked++; looked != 1 {
			return
		}
		pinRecord(t, q, root, history.PinDropped, "its root was dropped: denied")
		pinsMade(t, q)
	}})
	want := `not pinned ` + root.String() + ` in main ("sys"): its root was dropped: denied`
	if code := r.exitCode(false); r.end != waitDone || code != exitNotSent || !strings.Contains(out.String(), want) {
		t.Errorf("wait ended %v, exit %d (want 3), says:\n%s\nwant %q", r.end, code, out, want)
	}
}

// push --pin --wait waits for its own pairs and pins, not for the rest of
// the queue once its pairs have left it: the pairs it waited for, all
// gone, read as "the whole queue", and a pin made after its root's push
// still waited for every other entry queued (the hook's, another
// target's failing backlog), until the timeout, exiting 3.
func TestWaitPinIgnoresOtherEntries(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	other := storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	// Queued by someone else; the worker does not get to it here.
	if _, err := q.Add([]queue.Pair{{Target: "main", Path: other}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := queue.PinKey("main", root, "sys")
	e, c, out := loadedEnv(t, file)
	looked := 0
	// The root's pair is gone from the start (pushed); the pin is made
	// after the wait's second look.
	r := e.waitQueue(c, q, waitSpec{pairs: []queue.Pair{{Target: "main", Path: root}}, pins: []string{key}, since: time.Now(), timeout: 5 * time.Second, poll: 20 * time.Millisecond, quiet: true, looked: func() {
		if looked++; looked != 2 {
			return
		}
		if err := history.Append(q.Dir, history.MaxSize, []history.Record{{Time: time.Now(), Target: "main", Path: root.String(), Outcome: history.Pinned, Pin: `"sys"`}}); err != nil {
			t.Error(err)
		}
		p, err := q.ReadPin(key)
		if err != nil {
			t.Error(err)
			return
		}
		if err := q.RemovePin(p); err != nil {
			t.Error(err)
		}
	}})
	if code := r.exitCode(false); r.end != waitDone || code != exitOK {
		t.Errorf("wait ended %v, exit %d; want done, 0, with its pin made (the other entry is not its):\n%s", r.end, code, out)
	}
}

// push --pin --wait that times out names each pin not made, with its
// last error: it said "0 paths were not pushed in time:" and nothing
// more when only a pin was left (a root pushed before, whose cachix pin
// kept failing).
func TestWaitTimeoutNamesPinLeft(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	// The worker's failed attempt.
	key := queue.PinKey("main", root, "sys")
	failPin(t, q, key, 2, "cachix pin: HTTP 500")
	e, c, out := loadedEnv(t, file)
	r := e.waitPushed(c, nil, []string{key}, time.Now(), nil, 300*time.Millisecond, true)
	want := `pin "sys" of ` + root.String() + ` -> main: 2 failed attempts, last: cachix pin: HTTP 500`
	if code := r.exitCode(false); code != exitNotSent || !strings.Contains(out.String(), want) || strings.Contains(out.String(), "0 paths") {
		t.Errorf("exit %d (want 3), says:\n%s\nwant %q", code, out, want)
	}
}

// wait (the whole queue) that times out with only a pin left says so:
// it said "with paths still queued" with none queued.
func TestWaitWholeQueueTimeoutPinsOnly(t *testing.T) {
	q, file, _ := lockedPinQueue(t)
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{timeout: 300 * time.Millisecond, quiet: true})
	if code := r.exitCode(false); code != exitNotSent || !strings.Contains(out.String(), "with 1 pin not made yet:") || strings.Contains(out.String(), "paths still queued") {
		t.Errorf("exit %d (want 3), says:\n%s", code, out)
	}
}

// lockedPinQueue is main's queue with the worker lock held (no worker
// runs: the test plays its part) and the pin "sys" of a system's root.
func lockedPinQueue(t *testing.T) (q *queue.Queue, file string, root storepath.Path) {
	t.Helper()
	root = storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	q, file = mainQueue(t)
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("AcquireWorker = %v, %v", lock, err)
	}
	t.Cleanup(func() { lock.Unlock() })
	if _, err := q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return q, file, root
}

// failedPinQueuedAgain is lockedPinQueue after the pin failed twice
// (HTTP 500, backed off for backoff) and its root was queued again:
// Pinned as push --pin queues it, or not, as the hook and push --force do.
func failedPinQueuedAgain(t *testing.T, backoff time.Duration, pinned bool) (q *queue.Queue, file string, root storepath.Path) {
	t.Helper()
	q, file, root = lockedPinQueue(t)
	pins, _, err := q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins = %+v, %v", pins, err)
	}
	pins[0].Attempts, pins[0].LastError, pins[0].NextAttempt = 2, "HTTP 500", time.Now().Add(backoff)
	if err := q.UpdatePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add([]queue.Pair{{Target: "main", Path: root, Pinned: pinned}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return q, file, root
}

// A pin whose call failed, asked for again by push --pin, which queued
// its root again: the worker waits for that push before it tries the pin,
// and status said the pin's old failure, with its retry, as what it
// waits for.
func TestStatusPinAskedAgainWaitsForItsPush(t *testing.T) {
	q, file, root := failedPinQueuedAgain(t, time.Minute, true)
	_, c, _ := loadedEnv(t, file)
	st, err := collectStatus(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st.print(&out)
	want := `pin "sys" of ` + root.String() + `: waiting for its push`
	if !strings.Contains(out.String(), want) {
		t.Errorf("status says:\n%s\nwant %q", &out, want)
	}
}

// A pin that failed, its root queued again but the pin not asked for
// again (push --force, the hook): the worker waits out its back-off as
// well as the push. status said only "waiting for its push", as for a
// pin asked for again, which is tried right after it.
func TestStatusPinWaitingForItsPushSaysItsBackoff(t *testing.T) {
	q, file, root := failedPinQueuedAgain(t, time.Hour, false)
	_, c, _ := loadedEnv(t, file)
	status := func() string {
		t.Helper()
		st, err := collectStatus(c, q)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		st.print(&out)
		return out.String()
	}
	backedOff := regexp.MustCompile(`pin "sys" of \S+: waiting for its push, and its back-off, which ends in [0-9hms]+ \(2 failed attempts before: HTTP 500\)`)
	if out := status(); !backedOff.MatchString(out) {
		t.Errorf("status says:\n%s\nwant it waiting for its push and its back-off", out)
	}
	// Asked for again: due as soon as its root is pushed.
	if _, err := q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out, want := status(), `pin "sys" of `+root.String()+`: waiting for its push (2 failed attempts before: HTTP 500)`; !strings.Contains(out, want) {
		t.Errorf("status says:\n%s\nwant %q", out, want)
	}
}

// push --pin that asked for an old pin again (backed off, made due) while
// another of its pins could not be queued (here: its file unreadable)
// started no worker: AddPins counted only the new pins, none, and
// queuePins looked for a worker only when some were new. The pin made
// due then waited for another command to start one. The worker lock is
// a directory here, so that looking for a worker fails, and says so,
// rather than start one (the test binary) from a test.
func TestPushPinAskedAgainStartsAWorker(t *testing.T) {
	q, dir := testQueue(t)
	file := filepath.Join(dir, "hook.conf")
	mainConf(t, file, q.Dir, "[[target]]\nname = \"work\"\ncache = \"w\"\nallow = [\"*\"]\n")
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	pins := []queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}, {Target: "work", Path: root.String(), Name: "sys"}}
	if _, err := q.AddPins(pins, time.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := q.ReadPin(queue.PinKey("main", root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	p.Attempts, p.LastError, p.NextAttempt = 1, "HTTP 500", time.Now().Add(time.Hour)
	if err := q.UpdatePin(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q.Dir, "pins", queue.PinKey("work", root, "sys")), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(q.Dir, "lock")
	if err := os.RemoveAll(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	_, c, _ := loadedEnv(t, file)
	err = queuePins(c, pinPlan{pins: pins}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "worker lock") {
		t.Errorf("queuePins = %v; want it to have looked for a worker (the worker lock) for the pin asked for again", err)
	}
	if p, err := q.ReadPin(queue.PinKey("main", root, "sys")); err != nil || !p.NextAttempt.IsZero() {
		t.Errorf("the pin asked for again: %+v, %v; want it due", p, err)
	}
}

// A pin the worker gave up on as push --pin asked for it again is queued
// anew (Queue.DropPin) and made: its history holds the drop, then the
// pin. push --pin --wait said "not pinned" with the drop's reason beside
// "pinned", and exited 3, though the pin was made.
func TestWaitPinDroppedThenQueuedAnewAndMade(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	key := queue.PinKey("main", root, "sys")
	follow := history.Follow(q.Dir)
	e, c, out := loadedEnv(t, file)
	looked := 0
	r := e.waitQueue(c, q, waitSpec{pairs: []queue.Pair{}, pins: []string{key}, since: time.Now().Add(-time.Second), follow: follow, timeout: time.Minute, poll: 20 * time.Millisecond, looked: func() {
		switch looked++; looked {
		case 1:
			// Given up on, and queued anew from the ask: the file
			// stays.
			pinRecord(t, q, root, history.PinDropped, "its root is no longer in the store (garbage-collected)")
		case 2:
			pinRecord(t, q, root, history.Pinned, "")
			pinsMade(t, q)
		}
	}})
	if code := r.exitCode(false); code != exitOK || strings.Contains(out.String(), "not pinned") {
		t.Errorf("exit %d (want 0), says:\n%s\nwant the pin made, not also given up on", code, out)
	}
}

// The worker gives up on a pin push --pin has just asked for again
// (Queue.DropPin): it moves the pin's file aside, finds the ask, and links
// the file back. push --pin --wait, looking in between, found no pin file
// and ended: "not pinned", exit 3, for a pin kept and made after. Its ask
// says it is kept.
func TestWaitPinBetweenItsDropAndItsLinkBack(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	key := queue.PinKey("main", root, "sys")
	follow := history.Follow(q.Dir)
	askedAgain(t, q, root)
	e, c, out := loadedEnv(t, file)
	looked, n := dropThenLinkBack(t, q, root, key)
	r := e.waitQueue(c, q, waitSpec{pairs: []queue.Pair{}, pins: []string{key}, since: time.Now().Add(-time.Second), follow: follow, timeout: time.Minute, poll: 20 * time.Millisecond, looked: looked})
	if code := r.exitCode(false); code != exitOK || strings.Contains(out.String(), "not pinned") {
		t.Errorf("exit %d (want 0) after %d looks, says:\n%s\nwant the pin waited for while its file was aside, then made", code, *n, out)
	}
}

// A pin push --pin asked for again, made, and its file removed by a
// worker killed before it removed the ask (RemovePin removes the ask
// after the file, and leaves it on a failure): pinsLeft counted a pin
// whose file is gone while its ask is there, taking it for one DropPin
// moved aside, and the wait never ended (with --timeout 0 not even by
// giving up: such a pin has not failed). Only a pin whose file is aside
// in tmp/ is kept.
func TestWaitPinMadeWithItsAskLeftEnds(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	key := queue.PinKey("main", root, "sys")
	follow := history.Follow(q.Dir)
	askedAgain(t, q, root)
	e, c, out := loadedEnv(t, file)
	looked := 0
	r := e.waitQueue(c, q, waitSpec{pairs: []queue.Pair{}, pins: []string{key}, since: time.Now().Add(-time.Second), follow: follow, giveUpFailing: true, poll: 20 * time.Millisecond, looked: func() {
		switch looked++; looked {
		case 1:
			// Made; the worker killed between the removal of the
			// file and that of the ask.
			if err := history.Append(q.Dir, history.MaxSize, []history.Record{{Time: time.Now(), Target: "main", Path: root.String(), Outcome: history.Pinned, Pin: `"sys"`}}); err != nil {
				t.Error(err)
			}
			if err := os.Remove(filepath.Join(q.Dir, "pins", key)); err != nil {
				t.Error(err)
			}
		case 5:
			t.Error("still waiting for a pin made, its file gone, at the fifth look")
			if err := q.TakePinAsk(key); err != nil { // ends the wait
				t.Error(err)
			}
		}
	}})
	if code := r.exitCode(false); code != exitOK || looked != 2 {
		t.Errorf("exit %d (want 0) after %d looks (want 2), says:\n%s", code, looked, out)
	}
}

// dropThenLinkBack is a wait's looked for the pin key of root: at the
// first look the worker gives up on it (its look came before the ask),
// the drop recorded and the file moved aside; at the second the ask is
// found and the file linked back; at the third the pin is made. n counts
// the looks.
func dropThenLinkBack(t *testing.T, q *queue.Queue, root storepath.Path, key string) (looked func(), n *int) {
	pinFile, aside := filepath.Join(q.Dir, "pins", key), filepath.Join(q.Dir, "tmp", "pin-dropped."+key)
	n = new(int)
	return func() {
		switch *n++; *n {
		case 1:
			pinRecord(t, q, root, history.PinDropped, "its root is no longer in the store (garbage-collected)")
			if err := os.Rename(pinFile, aside); err != nil {
				t.Error(err)
			}
		case 2:
			if err := os.Rename(aside, pinFile); err != nil {
				t.Error(err)
			}
		case 3:
			pinRecord(t, q, root, history.Pinned, "")
			pinsMade(t, q)
		}
	}, n
}

// pinRecord appends the worker's record of an outcome of the pin "sys"
// of root in main.
func pinRecord(t *testing.T, q *queue.Queue, root storepath.Path, outcome, reason string) {
	t.Helper()
	if err := history.Append(q.Dir, history.MaxSize, []history.Record{{Time: time.Now(), Target: "main", Path: root.String(), Outcome: outcome, Reason: reason, Pin: `"sys"`}}); err != nil {
		t.Error(err)
	}
}

// pinsMade removes every pin queued, as the worker does once it is made
// or given up on.
func pinsMade(t *testing.T, q *queue.Queue) {
	t.Helper()
	pins, _, _ := q.ListPins()
	for _, p := range pins {
		if err := q.RemovePin(p); err != nil {
			t.Error(err)
		}
	}
}

// askedAgain asks for the pin "sys" of root in main again, as push --pin
// once more does.
func askedAgain(t *testing.T, q *queue.Queue, root storepath.Path) {
	t.Helper()
	if _, err := q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// A wait that times out on a pin the worker gave up on as push --pin
// asked for it again (Queue.DropPin keeps it: its drop is in the history,
// its file in pins/): it said both "not pinned" with the drop's reason
// and that the pin was still queued. The pin is queued, to be decided
// again: that alone is said.
func TestWaitTimeoutOnPinKeptAfterItsDrop(t *testing.T) {
	for _, whole := range []bool{false, true} {
		t.Run(map[bool]string{false: "push --pin --wait", true: "wait"}[whole], func(t *testing.T) {
			q, file, root := lockedPinQueue(t)
			key := queue.PinKey("main", root, "sys")
			follow := history.Follow(q.Dir)
			e, c, out := loadedEnv(t, file)
			spec := waitSpec{pairs: []queue.Pair{}, pins: []string{key}, since: time.Now().Add(-time.Second), follow: follow, timeout: 500 * time.Millisecond, poll: 20 * time.Millisecond, quiet: true}
			if whole {
				spec = waitSpec{timeout: 500 * time.Millisecond, poll: 20 * time.Millisecond, quiet: true}
			}
			looked := 0
			spec.looked = func() {
				if looked++; looked == 1 {
					// Given up on, and kept for the ask: the file stays.
					pinRecord(t, q, root, history.PinDropped, "its root is no longer in the store (garbage-collected)")
				}
			}
			r := e.waitQueue(c, q, spec)
			if code := r.exitCode(false); code != exitNotSent || r.end != waitTimedOut || strings.Contains(out.String(), "not pinned") || r.unpinned != 0 {
				t.Errorf("wait ended %v, exit %d (want 3), %d unpinned (want 0), says:\n%s\nwant the pin said queued, not also given up on", r.end, code, r.unpinned, out)
			}
		})
	}
}

// The same for wait (the whole queue): it listed pins/ alone, found no
// pin while its file was aside, and ended, "not pinned", exit 3, for a
// pin linked back and made after.
func TestWaitWholeQueuePinBetweenItsDropAndItsLinkBack(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	key := queue.PinKey("main", root, "sys")
	askedAgain(t, q, root)
	e, c, out := loadedEnv(t, file)
	looked, n := dropThenLinkBack(t, q, root, key)
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: time.Minute, poll: 20 * time.Millisecond, looked: looked})
	if code := r.exitCode(false); code != exitOK || strings.Contains(out.String(), "not pinned") {
		t.Errorf("exit %d (want 0) after %d looks, says:\n%s\nwant the pin waited for while its file was aside, then made", code, *n, out)
	}
}

// A pin of a removed target a drop left aside in tmp/, asked for again
// (so the worker links it back): forget listed pins/ alone, neither
// forgot it nor said it, and the next worker linked it back and pinned
// it. It is forgotten, and said, as one in pins/.
func TestForgetPinAside(t *testing.T) {
	q, file := mainQueue(t)
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	pin := queue.Pin{Target: "removed", Path: root.String(), Name: "sys"}
	now := time.Now()
	for i := 0; i < 2; i++ { // queued, then asked for again
		if _, err := q.AddPins([]queue.Pin{pin}, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	key := queue.PinKey("removed", root, "sys")
	// As DropPin leaves it when it cannot link it back.
	if err := os.Rename(filepath.Join(q.Dir, "pins", key), filepath.Join(q.Dir, "tmp", "pin-dropped."+key)); err != nil {
		t.Fatal(err)
	}
	forgetsRemovedPin(t, file, root)
	q.RelinkPinsAside()
	if pins, _, _ := q.ListPins(); len(pins) != 0 {
		t.Errorf("pins after forget and a worker's link back: %+v", pins)
	}
}

// forgetsRemovedPin runs forget with the config file and fails the test
// unless it says it forgot the pin "sys" of root for the target
// "removed", which the config no longer has.
func forgetsRemovedPin(t *testing.T, file string, root storepath.Path) {
	t.Helper()
	var out bytes.Buffer
	e := &env{ctx: context.Background(), configFlag: file, args: nil, stdout: &out, stderr: &out}
	if st := runForget(e, &forgetOptions{}); st != 0 {
		t.Fatalf("forget: %d\n%s", st, &out)
	}
	if !strings.Contains(out.String(), `forgot pin "sys" of `+root.String()+` -> removed (not pinned)`) {
		t.Errorf("forget says:\n%s", &out)
	}
}
