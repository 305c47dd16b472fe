package pusher

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// outputPipe carries the pusher's output to the worker, read at a pace.
//
// `nix copy` and `cachix push` write a line per path, each with a write of
// its own: 10,000 of them for a big closure. Read through Go's poller,
// every one of those writes woke the worker (the kernel wakes an epoll
// waiter on each write to a pipe it watches), three context switches a
// line: 0.3-0.4 s of the worker's CPU and 0.2-0.3 s more of Nix's system
// time for one 7 s copy, on a 2-core VM. Here the read end is never in
// an epoll set: the worker reads what has gathered, then pauses for
// outputPace, and only a pipe found empty is waited on, with poll(2).
// The pipe holds up to pipeSize meanwhile, so the pusher never waits on
// the worker unless it writes faster than that per pause.
type outputPipe struct {
	r    int // read end, non-blocking
	wake int // eventfd: stop reading
	// pace is the pause after a read; 0 when the pipe is too small to
	// hold a pause's output (a user past fs.pipe-user-pages-soft gets
	// pipes of one page).
	pace time.Duration
	// fast is closed when the pusher has exited: no more pauses, its
	// last output is read at once.
	fast     chan struct{}
	stopped  chan struct{}
	fastOnce sync.Once
	stopOnce sync.Once
}

// newOutputPipe returns the pipe and the end to give the pusher as its
// stdout and stderr. That end stays blocking: a pusher may not expect
// EAGAIN from its own stderr.
func newOutputPipe() (*outputPipe, *os.File, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("making a pipe: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.SetNonblock(fds[0], true)
	}
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		if wake >= 0 {
			unix.Close(wake)
		}
		return nil, nil, fmt.Errorf("setting up the output pipe: %w", err)
	}
	// Best effort: the pipe keeps its size where the user may not grow it.
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	p := &outputPipe{r: fds[0], wake: wake, fast: make(chan struct{}), stopped: make(chan struct{})}
	if size, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETPIPE_SZ, 0); err == nil && size >= minPacedPipe {
		p.pace = outputPace
	}
	return p, os.NewFile(uintptr(fds[1]), "pusher output"), nil
}

// copyTo copies the output to w until the pusher's end is closed, or
// stop. It closes the read end when it returns, so that a pusher still
// writing gets EPIPE rather than a full pipe.
func (p *outputPipe) copyTo(w io.Writer) error {
	defer unix.Close(p.r)
	buf := make([]byte, readSize)
	pause := time.NewTimer(time.Hour)
	defer pause.Stop()
	for {
		// Stop is looked at before every read, not only in the pause: a
		// pipe that every read fills, or one read without pauses, never
		// gets there (something the pusher started may flood it).
		select {
		case <-p.stopped:
			return errStopped
		default:
		}
		n, err := unix.Read(p.r, buf)
		switch {
		case n > 0:
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if n == len(buf) || p.pace == 0 {
				continue // more is waiting, or no room to wait
			}
			pause.Reset(p.pace)
			select {
			case <-pause.C:
			case <-p.fast:
			case <-p.stopped:
				return errStopped
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := p.await(); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("reading the pusher's output: %w", err)
		default:
			return nil // every writer closed its end
		}
	}
}

// await waits for output, the end of it, or stop.
func (p *outputPipe) await() error {
	fds := []unix.PollFd{{Fd: int32(p.r), Events: unix.POLLIN}, {Fd: int32(p.wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for the pusher's output: %w", err)
		}
		if fds[1].Revents != 0 {
			return errStopped
		}
		return nil
	}
}

// exited says the pusher is gone: what it left is read without pauses.
func (p *outputPipe) exited() { p.fastOnce.Do(func() { close(p.fast) }) }

// stop makes copyTo return: something the pusher started holds the
// pipe open after it was killed.
func (p *outputPipe) stop() {
	p.stopOnce.Do(func() {
		close(p.stopped)
		var one [8]byte
		one[0] = 1 // an eventfd counter is native-endian; any non-zero will do
		_, _ = unix.Write(p.wake, one[:])
	})
}

// close frees what copyTo does not: call it after copyTo returned.
func (p *outputPipe) close() { unix.Close(p.wake) }
