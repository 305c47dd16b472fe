// Package pusher uploads a batch of store paths to one target: a Cachix
// cache with `cachix push`, or any Nix store with `nix copy`.
//
// Both upload each path's whole runtime closure and skip what the
// destination already has, so pushing a path twice is harmless: the queue
// relies on that to retry without bookkeeping.
package pusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/trust"
)

// Pusher uploads paths to one target.
type Pusher interface {
	// Push uploads paths, writing the program's output to out. The
	// error carries the tail of that output, with secrets removed.
	Push(ctx context.Context, paths []string, out io.Writer) error
}

// New returns the pusher for a target.
func New(c *config.Config, t *config.Target) Pusher {
	nix := nixstore.Nix{BinDir: c.Nix.BinDir}
	if t.Store != "" {
		return &storePusher{nix: nix, store: t.Store}
	}
	return &cachixPusher{bin: c.Cachix.Bin, args: c.Cachix.PushArgs, cache: t.Cache, tokenFile: c.Cachix.AuthTokenFile, nix: nix}
}

type cachixPusher struct {
	bin       string
	args      []string
	cache     string
	tokenFile string
	nix       nixstore.Nix
}

func (p *cachixPusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	env := os.Environ()
	var secret string
	if p.tokenFile != "" {
		tok, err := config.ReadToken(p.tokenFile)
		if err != nil {
			return err
		}
		secret = tok
		// The token goes in the environment, never in argv, where any
		// user could read it from /proc. exec keeps the last of
		// duplicate variables, so this one wins over an inherited one.
		env = append(env, "CACHIX_AUTH_TOKEN="+tok)
	}
	// Root runs cachix with the token in its environment: it must pass
	// the trust rule after the PATH lookup, and so must the nix-store it
	// will find in nix.bin_dir.
	bin, err := trust.LookPath(p.bin)
	if err != nil {
		return fmt.Errorf("cachix.bin %s: %w", p.bin, err)
	}
	if p.nix.BinDir != "" {
		if _, err := p.nix.Trusted("nix-store"); err != nil {
			return fmt.Errorf("nix.bin_dir: %w", err)
		}
	}
	args := append(append([]string{"push"}, p.args...), "--", p.cache)
	args = append(args, paths...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = withNixOnPath(env, p.nix)
	return run(cmd, out, secret)
}

type storePusher struct {
	nix   nixstore.Nix
	store string
}

func (p *storePusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	cmd := p.nix.Command(ctx, append([]string{"copy", "--to", p.store, "--"}, paths...)...)
	return run(cmd, out, "")
}

// run runs cmd with its output going both to out and to a buffer whose
// tail becomes the error message.
func run(cmd *exec.Cmd, out io.Writer, secret string) error {
	// The tail for the error message is taken after redaction, so it
	// cannot start in the middle of the token.
	var tail tailBuffer
	w := &redactor{w: io.MultiWriter(out, &tail), secret: secret}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Stdin = nil
	setDeathSignal(cmd)
	err := cmd.Run()
	w.flush()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(tail.String())
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		if msg == "" {
			return fmt.Errorf("%s exited with %s and printed nothing", cmd.Args[0], ee.ProcessState)
		}
		return fmt.Errorf("%s exited with %s: %s", cmd.Args[0], ee.ProcessState, lastLines(msg, 3))
	}
	return fmt.Errorf("running %s: %w", cmd.Args[0], err)
}

// withNixOnPath lets cachix find nix-store when the daemon's PATH lacks it.
func withNixOnPath(env []string, nix nixstore.Nix) []string {
	if nix.BinDir == "" {
		return env
	}
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = kv + ":" + nix.BinDir
			return env
		}
	}
	return append(env, "PATH="+nix.BinDir)
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// redactor removes the token from output on its way to the log. It works
// line by line, so a token split across two writes is still caught.
type redactor struct {
	w      io.Writer
	secret string
	buf    []byte
}

func (r *redactor) Write(p []byte) (int, error) {
	if r.secret == "" {
		return r.w.Write(p)
	}
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := io.WriteString(r.w, redact(string(r.buf[:i+1]), r.secret)); err != nil {
			return 0, err
		}
		r.buf = r.buf[i+1:]
	}
	if len(r.buf) > 64<<10 {
		_, _ = io.WriteString(r.w, redact(string(r.buf), r.secret))
		r.buf = r.buf[:0]
	}
	return len(p), nil
}

// flush writes what is left after the last newline.
func (r *redactor) flush() {
	if len(r.buf) > 0 {
		_, _ = io.WriteString(r.w, redact(string(r.buf), r.secret))
		r.buf = r.buf[:0]
	}
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
