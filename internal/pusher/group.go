package pusher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/procgroup"
)

// waitDelay bounds how long run waits for the output pipe once the
// pusher is gone: a grandchild that escaped the group kill and holds the
// pipe must not hold the worker.
const waitDelay = 2 * time.Second

// The pace of reading a pusher's output (see outputPipe): one read per
// outputPace at most while output trickles in, readSize at a time, with
// up to pipeSize waiting in the pipe meanwhile.
const (
	outputPace = 50 * time.Millisecond
	readSize   = 64 << 10
	pipeSize   = 1 << 20
	// minPacedPipe is the smallest pipe read at a pace: at nix copy's
	// 140 KB/s of output, a pause fills 7 KB of it.
	minPacedPipe = 64 << 10
)

var (
	errTimedOut = errors.New("push timed out")
	errStopped  = errors.New("stopped reading the pusher's output")
)

// run runs the command mk makes, with its output going, redacted and cut
// into lines, to out and to a buffer whose tail becomes the error message.
//
// The pusher gets a process group of its own. On timeout, or when ctx
// ends (the worker is stopping), the whole group is killed with SIGKILL:
// cachix's or nix's own children too.
func run(ctx context.Context, timeout time.Duration, mk func(context.Context) *exec.Cmd, out io.Writer, secrets ...string) error {
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeoutCause(ctx, timeout, errTimedOut)
	}
	defer cancel()
	cmd := mk(cctx)
	// The tail for the error message is taken after redaction, so it
	// cannot start in the middle of the token.
	var tail tailBuffer
	lines := newLineCutter(io.MultiWriter(out, &tail), MaxLine)
	// One redactor per secret (the token, the signing key), chained.
	var w io.Writer = lines
	var chain []*redactor
	for _, s := range secrets {
		r := newRedactor(w, s)
		chain, w = append(chain, r), r
	}
	pipe, end, err := newOutputPipe()
	if err != nil {
		return fmt.Errorf("running %s: %w", cmd.Args[0], err)
	}
	defer pipe.close()
	cmd.Stdout, cmd.Stderr = end, end
	cmd.Stdin = nil
	g := procgroup.Set(cmd)
	cmd.Cancel = func() error {
		_ = g.Kill()
		return nil
	}
	// After a cancel, the kill of the pusher itself (should the group
	// kill have missed it) comes this much later.
	cmd.WaitDelay = waitDelay
	err = cmd.Start()
	end.Close()
	if err != nil {
		_ = pipe.copyTo(io.Discard) // EOF at once: it frees the read end
		return fmt.Errorf("running %s: %w", cmd.Args[0], err)
	}
	copied := make(chan error, 1)
	go func() { copied <- pipe.copyTo(w) }()
	err = g.End()
	pipe.exited()
	// What the reading returns is left: the output is for the log, and
	// the pusher's exit status says whether the upload worked (a copy
	// that stopped early closed the pipe, which the pusher then sees).
	select {
	case <-copied:
	case <-time.After(waitDelay):
		// The pusher exited, and End killed its group, but
		// something it started outside the group keeps the output
		// open: it is read no more. The pusher's exit status still
		// tells whether the upload worked.
		pipe.stop()
		<-copied
	}
	for i := len(chain) - 1; i >= 0; i-- {
		chain[i].flush() // outermost first
	}
	lines.flush()
	msg := strings.TrimSpace(tail.String())
	// A pusher that exited by itself, not by the kill, is judged by its
	// own status, even if push_timeout passed after it exited (while a
	// grandchild held the output): exec then reports the deadline.
	exited := cmd.ProcessState != nil && cmd.ProcessState.Exited()
	if err == nil || exited && cmd.ProcessState.Success() {
		// It exited 0 before any kill: the upload worked.
		return nil
	}
	if !exited && ctx.Err() == nil && errors.Is(context.Cause(cctx), errTimedOut) {
		err := fmt.Errorf("%s timed out after %s (queue.push_timeout); it and its process group were killed", cmd.Args[0], config.HumanDuration(timeout))
		if msg != "" {
			err = fmt.Errorf("%w: %s", err, lastLines(msg, 3))
		}
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s stopped: %w", cmd.Args[0], ctx.Err())
	}
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		if msg == "" {
			return fmt.Errorf("%s exited with %s and printed nothing", cmd.Args[0], ee.ProcessState)
		}
		return fmt.Errorf("%s exited with %s: %s", cmd.Args[0], ee.ProcessState, lastLines(msg, 3))
	}
	return fmt.Errorf("running %s: %w", cmd.Args[0], err)
}
