//go:build !linux

package pusher

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// outputPipe carries the pusher's output to the worker, read at a pace
// (see the Linux version, which also keeps the pipe out of the poller).
type outputPipe struct {
	r        *os.File
	fast     chan struct{}
	stopped  chan struct{}
	fastOnce sync.Once
	stopOnce sync.Once
}

func newOutputPipe() (*outputPipe, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	return &outputPipe{r: r, fast: make(chan struct{}), stopped: make(chan struct{})}, w, nil
}

func (p *outputPipe) copyTo(w io.Writer) error {
	defer p.r.Close()
	buf := make([]byte, readSize)
	for {
		n, err := p.r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return errStopped
			}
			return err
		}
		if n < len(buf) {
			select {
			case <-time.After(outputPace):
			case <-p.fast:
			case <-p.stopped:
				return errStopped
			}
		}
	}
}

func (p *outputPipe) exited() { p.fastOnce.Do(func() { close(p.fast) }) }

func (p *outputPipe) stop() {
	p.stopOnce.Do(func() {
		close(p.stopped)
		_ = p.r.Close()
	})
}

func (p *outputPipe) close() {}
