package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// A pin waiting with no entry left (its root pushed, the worker gone
// before it made the pin) is work left: doctor said "not running, nothing
// to push".
func TestDoctorCountsPinsAsWorkLeft(t *testing.T) {
	q, file := mainQueue(t)
	addSysPin(t, q)
	worker := doctorWorkerCheck(t, file)
	if worker == nil || worker.Level != checkProblem || !strings.Contains(worker.Message, "1 pin queued and no worker running") {
		t.Errorf("worker check = %+v, want a problem: the pin is queued and no worker runs", worker)
	}
}

// A pin whose cachix pin call keeps failing while a worker runs is a
// problem, as a failing entry is: doctor counted failing entries alone,
// and said "worker: ok running".
func TestDoctorReportsFailingPins(t *testing.T) {
	q, file := mainQueue(t)
	addSysPin(t, q)
	pins, _, err := q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins: %v, %v", pins, err)
	}
	pins[0].Attempts, pins[0].NextAttempt, pins[0].LastError = 3, time.Now().Add(time.Hour), "cachix pin: 401 unauthorized"
	if err := q.UpdatePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("taking the worker lock: %v", err)
	}
	defer lock.Unlock()
	worker := doctorWorkerCheck(t, file)
	if worker == nil || worker.Level != checkProblem || !strings.Contains(worker.Message, "401 unauthorized") {
		t.Errorf("worker check = %+v, want a problem naming the pin's error", worker)
	}
}

// addSysPin queues a pin named sys for main.
func addSysPin(t *testing.T, q *queue.Queue) {
	t.Helper()
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	if _, err := q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// doctorWorkerCheck runs doctor's queue checks with the config file and
// returns its "worker" check, nil when there is none.
func doctorWorkerCheck(t *testing.T, file string) *check {
	t.Helper()
	e, c, _ := loadedEnv(t, file)
	d := &doctor{e: e, ctx: e.ctx, cfg: c}
	d.checkQueue()
	for i := range d.checks {
		if d.checks[i].Name == "worker" {
			return &d.checks[i]
		}
	}
	return nil
}

// A pin whose call failed, asked for again with its root queued again,
// waits for that push, as status says ("waiting for its push"): doctor
// called it failing, with its old error, and exited 1.
func TestDoctorPinAskedAgainWaitsForItsPush(t *testing.T) {
	_, file, _ := failedPinQueuedAgain(t, time.Minute, true)
	worker := doctorWorkerCheck(t, file)
	if worker == nil || worker.Level != checkOK || worker.Message != "running" {
		t.Errorf("worker check = %+v, want ok running: the pin waits for its root's push", worker)
	}
}

// The same pin, in the metrics: pins_failing counted it failing where
// status and doctor say it waits for its root's push.
func TestPrometheusPinAskedAgainWaitsForItsPush(t *testing.T) {
	q, file, _ := failedPinQueuedAgain(t, time.Minute, true)
	e, c, out := loadedEnv(t, file)
	if code := e.printMetrics(c, q, false); code != 0 {
		t.Fatalf("printMetrics exited %d:\n%s", code, out)
	}
	for _, want := range []string{"\ncachix_filter_hook_pins_pending{target=\"main\"} 1\n", "\ncachix_filter_hook_pins_failing{target=\"main\"} 0\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("want %q in the metrics:\n%s", strings.TrimSpace(want), out)
		}
	}
}

// An unreadable file in pins/ is a pin never made, which the worker
// neither makes nor sets aside: status, doctor and the metrics threw away
// ListPins' list of them, and said nothing of it.
func TestUnreadablePinCounted(t *testing.T) {
	q, file := mainQueue(t)
	addSysPin(t, q)
	bad := filepath.Join(q.Dir, "pins", "0123456789abcdfghijklmnpqrsvwxyz.0000000000000000")
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	st, err := collectStatus(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	st.print(&text)
	if !strings.Contains(text.String(), "\n1 unreadable pin in "+q.Dir+"/pins") {
		t.Errorf("status says:\n%s\nwant the unreadable pin counted", &text)
	}
	d := &doctor{e: e, ctx: e.ctx, cfg: c}
	d.checkQueue()
	found := false
	for _, ch := range d.checks {
		found = found || ch.Level == checkWarning && strings.Contains(ch.Message, "1 unreadable pin in")
	}
	if !found {
		t.Errorf("doctor's checks = %+v, want a warning of the unreadable pin", d.checks)
	}
	if code := e.printMetrics(c, q, false); code != 0 || !strings.Contains(out.String(), "\ncachix_filter_hook_corrupt_entries 1\n") {
		t.Errorf("printMetrics exited %d, want corrupt_entries 1:\n%s", code, out)
	}
}

// What state.json says of pins, which status and wait show, doctor said
// nothing of: a pin given up on whose file the worker cannot remove
// (pin_drops: wait counts it failing), and the worker unable to look for
// the pins a failed drop left aside (pins_aside_error). Each is a
// problem, with what to do.
func TestDoctorReportsPinDropsAndPinsAside(t *testing.T) {
	q, file := mainQueue(t)
	addSysPin(t, q)
	pins, _, err := q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins: %v, %v", pins, err)
	}
	state := fmt.Sprintf(`{"targets": {}, "pin_drops": {%q: {"target": "main", "error": "removing pin: read-only file system", "attempts": 2, "next_attempt": %q}},
		"pins_aside_error": "listing tmp: input/output error", "pins_aside_error_time": %q}`,
		pins[0].Key(), time.Now().Add(time.Hour).Format(time.RFC3339), time.Now().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(q.Dir, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("taking the worker lock: %v", err)
	}
	defer lock.Unlock()
	e, c, _ := loadedEnv(t, file)
	d := &doctor{e: e, ctx: e.ctx, cfg: c}
	d.checkQueue()
	var drop, aside *check
	for i := range d.checks {
		switch ch := &d.checks[i]; {
		case strings.Contains(ch.Message, "read-only file system"):
			drop = ch
		case strings.Contains(ch.Message, "input/output error"):
			aside = ch
		}
	}
	if drop == nil || drop.Level != checkProblem || !strings.Contains(drop.Message, `"sys"`) || drop.Fix == "" {
		t.Errorf("pin drop check = %+v, want a problem naming the pin and its error, with a fix (checks: %+v)", drop, d.checks)
	}
	if aside == nil || aside.Level != checkProblem || !strings.Contains(aside.Message, q.Dir+"/tmp") || aside.Fix == "" {
		t.Errorf("pins aside check = %+v, want a problem naming %s/tmp and the error, with a fix (checks: %+v)", aside, q.Dir, d.checks)
	}
}
