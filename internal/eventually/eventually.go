// Package eventually is the tests' one way to wait for something another
// process or goroutine does: poll a condition until it holds or a
// deadline passes, then fail saying what was awaited and what was seen.
//
// A test that sleeps and then asserts passes or fails by the machine's
// speed; one that waits here fails only when the thing never happens.
package eventually

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// True polls cond until it returns true, and fails the test (t.Fatal)
// when it has not after within. what says what was awaited ("the worker
// to start"); each explain is called on failure and its text added to
// the message (a log, the state seen last). Polling starts every
// millisecond and slows to every 100 ms, so a quick event is seen quickly
// and a slow one costs little.
func True(t testing.TB, within time.Duration, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	if err := Wait(within, cond); err != nil {
		msg := []string{fmt.Sprintf("timed out after %s waiting for %s", within, what)}
		for _, e := range explain {
			msg = append(msg, e())
		}
		t.Fatal(strings.Join(msg, "\n"))
	}
}

// Wait is True for where t.Fatal may not be called (another goroutine):
// it returns an error when cond has not held after within.
func Wait(within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for !cond() {
		// Checked after cond, so that cond is tried once more after
		// a pause that crossed the deadline.
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
	return nil
}

// Recv receives from ch, and fails the test (t.Fatal) when nothing came
// after within: a receive that would hang ends saying what it awaited,
// not in go test's timeout panic. A closed ch gives T's zero value.
func Recv[T any](t testing.TB, within time.Duration, what string, ch <-chan T, explain ...func() string) T {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
	}
	msg := []string{fmt.Sprintf("timed out after %s waiting for %s", within, what)}
	for _, e := range explain {
		msg = append(msg, e())
	}
	t.Fatal(strings.Join(msg, "\n"))
	var zero T
	return zero
}

// Left is how long a test may still wait for something that must
// happen: until go test's -timeout, less a twentieth of the time left,
// to fail saying what was awaited rather than in the timeout's panic (a
// day under -timeout 0). A wait bounded by it fails only when the thing
// never happens, however loaded the machine.
func Left(t interface{ Deadline() (time.Time, bool) }) time.Duration {
	deadline, ok := t.Deadline()
	if !ok {
		return 24 * time.Hour
	}
	left := time.Until(deadline)
	return left - left/20
}
