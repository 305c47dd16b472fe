package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// wait (no --timeout) on a queue whose only pin the worker gives up on
// but cannot remove (here tmp/, where its drop moves it aside, is not a
// directory): the pin had no failed attempt and its root was not queued,
// so it never counted as failing, and wait never ended. The worker says
// the failing drop in state.json, backed off; wait ends, exit 3, and
// says why.
func TestWaitEndsOnPinWhoseDropKeepsFailing(t *testing.T) {
	q, file := mainQueue(t)
	// Not in the store: garbage-collected, the pin is given up on.
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	if _, err := q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(q.Dir, "tmp")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	log := logrus.New()
	log.SetOutput(io.Discard)
	if err := worker.New(c, q, log).Run(context.Background(), worker.Once); !errors.Is(err, worker.ErrLeft) {
		t.Fatalf("worker Run(Once) = %v, want %v", err, worker.ErrLeft)
	}
	// The worker runs on, backed off (no other is started).
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("AcquireWorker = %v, %v", lock, err)
	}
	defer lock.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.ctx = ctx
	done := make(chan waitResult, 1)
	go func() {
		done <- e.waitQueue(c, q, waitSpec{giveUpFailing: true, poll: 20 * time.Millisecond})
	}()
	select {
	case r := <-done:
		if code := r.exitCode(false); r.end != waitFailing || code != exitNotSent {
			t.Errorf("wait ended %v, exit %d; want it failing, exit %d:\n%s", r.end, code, exitNotSent, out)
		}
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatal("wait still waits for a pin whose drop keeps failing")
	}
	if s := out.String(); !strings.Contains(s, "every pin left has failed") || !strings.Contains(s, "cannot be removed") {
		t.Errorf("wait says:\n%s\nwant the pin failing, and why", s)
	}
}
