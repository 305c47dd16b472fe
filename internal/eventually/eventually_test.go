package eventually

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fatalTB records what True fails with instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()           {}
func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...) }

func TestTrueWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		time.Sleep(30 * time.Millisecond)
		n.Store(1)
	}()
	f := &fatalTB{TB: t}
	True(f, 10*time.Second, "n to be set", func() bool { return n.Load() == 1 })
	if f.msg != "" {
		t.Fatalf("failed although the condition came to hold: %s", f.msg)
	}
}

func TestTrueFailsSayingWhatAndWhy(t *testing.T) {
	f := &fatalTB{TB: t}
	start := time.Now()
	calls := 0
	True(f, 50*time.Millisecond, "the impossible", func() bool { calls++; return false }, func() string { return "seen: nothing" })
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %s, before the deadline", took)
	}
	if !strings.Contains(f.msg, "timed out after 50ms waiting for the impossible") || !strings.Contains(f.msg, "seen: nothing") {
		t.Errorf("message: %q", f.msg)
	}
	if calls < 2 {
		t.Errorf("condition tried %d times", calls)
	}
}

func TestWait(t *testing.T) {
	if err := Wait(time.Second, func() bool { return true }); err != nil {
		t.Errorf("a condition that holds: %v", err)
	}
	if err := Wait(10*time.Millisecond, func() bool { return false }); err == nil {
		t.Error("a condition that never holds: no error")
	}
}

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	f := &fatalTB{TB: t}
	if got := Recv(f, time.Second, "a value", ch); got != 7 || f.msg != "" {
		t.Errorf("Recv = %d, failing with %q; want 7", got, f.msg)
	}
	Recv(f, 10*time.Millisecond, "the silent", make(chan int), func() string { return "seen: nothing" })
	if !strings.Contains(f.msg, "timed out after 10ms waiting for the silent") || !strings.Contains(f.msg, "seen: nothing") {
		t.Errorf("message: %q", f.msg)
	}
}

type deadlineT struct {
	at time.Time
	ok bool
}

func (d deadlineT) Deadline() (time.Time, bool) { return d.at, d.ok }

func TestLeft(t *testing.T) {
	if got := Left(deadlineT{}); got != 24*time.Hour {
		t.Errorf("without a deadline: %s", got)
	}
	// Short of the deadline by a twentieth of what is left, so that it
	// ends before go test's panic.
	if got := Left(deadlineT{time.Now().Add(100 * time.Second), true}); got > 95*time.Second {
		t.Errorf("100 s before the deadline: %s", got)
	}
}
