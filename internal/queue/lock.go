package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

const lockFile = "lock"

// Lock is the worker lock: exactly one worker drains a queue directory.
type Lock struct{ f *os.File }

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }

func (q *Queue) openLock() (*os.File, error) {
	f, err := os.OpenFile(q.path(lockFile), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening worker lock: %w", err)
	}
	return f, nil
}

// AcquireWorker takes the worker lock, waiting up to wait for it (forever
// when wait is negative). It returns nil, nil when another worker kept it.
// Hooks probe the lock for microseconds, so a worker that waits a little
// never mistakes a probing hook for another worker.
func (q *Queue) AcquireWorker(ctx context.Context, wait time.Duration) (*Lock, error) {
	f, err := q.openLock()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("taking worker lock %s: %w", f.Name(), err)
		}
		// If a shared lock is to be had, only probing hooks are in the
		// way: they let go within microseconds. If not, a worker holds
		// it, and a worker that was told to wait briefly leaves now.
		probing := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil
		if probing {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		if wait >= 0 && (!probing || time.Now().After(deadline)) {
			f.Close()
			return nil, nil
		}
		pause := 100 * time.Millisecond
		if probing {
			pause = 5 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// WorkerRunning reports whether a worker holds the lock. It probes with a
// shared lock, which many hooks can hold at once.
func (q *Queue) WorkerRunning() (bool, error) {
	f, err := q.openLock()
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing worker lock %s: %w", f.Name(), err)
	}
	return false, nil
}
