package nixstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/procgroup"
)

// Session is one `nix-store --serve` kept open for many PathInfos calls:
// the worker asks about each batch, and starting Nix for a batch of 20
// paths cost 70-90 ms of a push that the build's user waits for (issue
// 22: from the last build to the cache), where the questions themselves
// take a few. It behaves as a fresh process would:
//   - Nix's in-process cache of what is not valid is off
//     (narinfo-cache-negative-ttl 0), so a path built since the last
//     question is seen; what is valid stays cached, as the worker's
//     Gatherer keeps it too (a path a live one refers to is never
//     collected, and the worker looks each path up in the store before
//     pushing it), so the closures of a burst's builds, which share most
//     of their paths, are asked of the daemon once;
//   - a session lives at most sessionMaxAge, and ends after sessionIdle
//     without a question, so that a Nix upgraded or reconfigured is
//     picked up, and no process waits on an idle worker;
//   - each call is bounded by its context and the path-info timeout:
//     past either the process is killed;
//   - on any failure the session ends and the call is made again
//     through a one-shot PathInfos (and its `nix path-info` fallback).
//
// Its methods may be called from several goroutines: one call at a time
// uses the process.
type Session struct {
	n Nix

	// sem is the session's lock (a channel of one): a caller waits for
	// it no longer than its context, so that a question bounded to a
	// second (the worker's round asks whether builds are done) is not
	// held for minutes behind another caller's question to a Nix that
	// hangs.
	sem     chan struct{}
	proc    *serveProc
	started time.Time
	idle    *time.Timer
	closed  bool
	// maxAge and idleAfter are sessionMaxAge and sessionIdle; a test
	// that needs one process for its whole run (TestSessionRealNix)
	// lifts them for its own session.
	maxAge, idleAfter time.Duration
}

const (
	sessionMaxAge = time.Minute
	sessionIdle   = 5 * time.Second
)

type serveProc struct {
	cmd    *exec.Cmd
	group  *procgroup.Group // cmd is waited for through it, never cmd.Wait
	stdin  io.Closer
	c      *serveConn
	stderr *tail // read only once the process is waited for
	cancel context.CancelFunc
}

// NewSession returns a Session; it starts nix-store at its first call.
func (n Nix) NewSession() *Session {
	return &Session{n: n, sem: make(chan struct{}, 1), maxAge: sessionMaxAge, idleAfter: sessionIdle}
}

// ErrSessionBusy is a call that gave up waiting for the session while
// another used it: Nix was not asked, and may well answer the next time.
var ErrSessionBusy = errors.New("the nix-store --serve session is busy")

// lock takes the session's lock, or gives up when ctx ends first.
func (s *Session) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrSessionBusy, ctx.Err())
	}
}

func (s *Session) unlock() { <-s.sem }

// PathInfos is Nix.PathInfos through the session.
func (s *Session) PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]PathInfo, error) {
	if len(paths) == 0 {
		return map[string]PathInfo{}, nil
	}
	infos, err := s.query(ctx, recursive, paths)
	if err == nil {
		return byPath(infos), nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	return s.n.PathInfos(ctx, recursive, paths...)
}

func (s *Session) query(ctx context.Context, recursive bool, paths []string) ([]PathInfo, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	if s.closed {
		return nil, errors.New("nix-store --serve session closed")
	}
	if s.proc != nil && time.Since(s.started) > s.maxAge {
		s.stopLocked()
	}
	if s.proc == nil {
		// The process outlives this call; its handshake does not: a Nix
		// that never answers it is killed when the caller gives up, not
		// minutes later with the session's lock held.
		p, err := s.n.startServe(context.Background(), ctx)
		if err != nil {
			return nil, err
		}
		s.proc, s.started = p, time.Now()
	}
	if s.idle != nil {
		s.idle.Stop()
	}
	// A question that takes too long, or whose caller gives up, ends
	// the process: the reads then fail, and the session with them.
	p := s.proc
	timer := time.AfterFunc(pathInfoTimeout, p.kill)
	stop := context.AfterFunc(ctx, p.kill)
	infos, err := p.c.query(recursive, paths)
	timer.Stop()
	stop()
	if err != nil {
		msg := s.stopLocked()
		return nil, fmt.Errorf("nix-store --serve, %d paths: %w: %s", len(paths), err, msg)
	}
	s.idle = time.AfterFunc(s.idleAfter, s.Close)
	return infos, nil
}

// Close ends the session's process, if any; a later call starts another.
func (s *Session) Close() {
	_ = s.lock(context.Background())
	defer s.unlock()
	s.stopLocked()
}

// Shut ends the session for good: later calls go through one-shot
// PathInfos.
func (s *Session) Shut() {
	_ = s.lock(context.Background())
	defer s.unlock()
	s.stopLocked()
	s.closed = true
}

// stopLocked ends the process and returns the end of what it printed on
// stderr.
func (s *Session) stopLocked() string {
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	p := s.proc
	if p == nil {
		return ""
	}
	s.proc = nil
	return p.stop()
}

// stop ends the process, at the end of its input or killed a second
// later, and returns the end of what it printed on stderr.
func (p *serveProc) stop() string {
	p.stdin.Close() // the server ends at the end of its input
	done := make(chan struct{})
	go func() {
		_ = p.group.End()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		p.kill()
		<-done
	}
	p.cancel()
	return strings.TrimSpace(p.stderr.String())
}

// kill ends the process's context: that kills its process group, and
// WaitDelay later closes its pipes should something that escaped the
// group still hold them, so that a read of them ends either way.
func (p *serveProc) kill() {
	if p != nil {
		p.cancel()
	}
}

// startServe starts a `nix-store --serve`, with Nix's cache of invalid
// paths off, and opens the protocol. The process ends with ctx; the
// handshake is given up, and the process killed, when call ends.
func (n Nix) startServe(ctx, call context.Context) (*serveProc, error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := n.command(ctx, "nix-store", "--serve", "--option", "substituters", "", "--option", "narinfo-cache-negative-ttl", "0")
	if cmd.Err != nil {
		cancel()
		return nil, cmd.Err
	}
	p := &serveProc{cmd: cmd, stderr: &tail{}, cancel: cancel}
	cmd.Stderr = p.stderr
	p.group = inGroup(cmd)
	cmd.WaitDelay = waitDelay
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("nix-store --serve: %w", err)
	}
	p.stdin = stdin
	p.c = &serveConn{r: bufio.NewReaderSize(io.LimitReader(stdout, maxInfoOutput), 64<<10), w: bufio.NewWriter(stdin)}
	hs := time.AfterFunc(pathInfoTimeout, p.kill)
	stop := context.AfterFunc(call, p.kill)
	err = p.c.handshake()
	hs.Stop()
	stop()
	if err != nil {
		stdin.Close()
		_ = p.group.End()
		cancel()
		if call.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, call.Err())
		}
		return nil, fmt.Errorf("nix-store --serve: %w: %s", err, strings.TrimSpace(p.stderr.String()))
	}
	return p, nil
}
