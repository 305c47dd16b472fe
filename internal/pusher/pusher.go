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
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// Pusher uploads paths to one target.
type Pusher interface {
	// Push uploads paths, writing the program's output to out as whole
	// lines of at most MaxLine bytes, with secrets removed. The error
	// carries the tail of that output.
	Push(ctx context.Context, paths []string, out io.Writer) error
}

// New returns the pusher for a target.
func New(c *config.Config, t *config.Target) Pusher {
	nix := nixstore.Nix{BinDir: c.Nix.BinDir}
	if t.Store != "" {
		return &storePusher{nix: nix, store: t.Store, keyFile: t.SecretKeyFile, timeout: c.Queue.PushTimeout}
	}
	return &cachixPusher{bin: c.Cachix.Bin, args: c.Cachix.PushArgs, cache: t.Cache, tokenFile: c.Cachix.AuthTokenFile, keyFile: c.Cachix.SigningKeyFile, nix: nix, timeout: c.Queue.PushTimeout}
}

type cachixPusher struct {
	bin       string
	args      []string
	cache     string
	tokenFile string
	keyFile   string // its content goes to cachix as CACHIX_SIGNING_KEY
	nix       nixstore.Nix
	timeout   time.Duration // 0: none
}

func (p *cachixPusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	global, own := cachixGlobalArgs(p.args)
	args := append(append(append(global, "push"), own...), "--", p.cache)
	sw := &skipWatch{Writer: out, given: paths}
	if err := p.run(ctx, append(args, paths...), sw); err != nil {
		return err
	}
	if sw.n > 0 {
		return fmt.Errorf("%s exited 0 but skipped %d of the %d paths given, which were not pushed: %s", p.bin, sw.n, len(paths), sw.first)
	}
	return nil
}

// skipWatch passes cachix's output on and counts the paths given that it
// skipped. cachix push warns "Warning: PATH is not valid, skipping" (or
// "Warning: PATH: REASON, skipping") for a path it cannot find in the
// store, garbage-collected since it was queued, and still exits 0
// (Cachix.Client.Command.Push): that is no upload, and must not be
// recorded as one.
type skipWatch struct {
	io.Writer
	given []string
	set   map[string]bool // given, made at the first warning
	n     int
	first string
}

var (
	skipWarning = []byte("Warning: ")
	skipEnd     = []byte(", skipping")
	// The colour's reset as the lines come: control characters escaped
	// (see lineCutter).
	colorReset = []byte(`\x1b[0m`)
)

// skips says whether line is cachix's warning that it skipped a path: it
// ends with ", skipping" (before the colour's reset), so that a path whose
// name holds "skipping", named in another warning, is not one.
func skips(line []byte) bool {
	line = bytes.TrimRight(line, " \r\n")
	line = bytes.TrimSuffix(line, colorReset)
	return bytes.HasSuffix(line, skipEnd)
}

// Write takes one line: run hands over whole lines, a write each.
func (s *skipWatch) Write(p []byte) (int, error) {
	if i := bytes.Index(p, skipWarning); i >= 0 && skips(p) {
		path := p[i+len(skipWarning):]
		if j := bytes.IndexAny(path, " :,"); j >= 0 {
			path = path[:j]
		}
		if s.set == nil {
			s.set = make(map[string]bool, len(s.given))
			for _, g := range s.given {
				s.set[g] = true
			}
		}
		if s.set[string(path)] {
			s.set[string(path)] = false // counted once
			if s.n++; s.n == 1 {
				s.first = strings.TrimSpace(string(p))
			}
		}
	}
	return s.Writer.Write(p)
}

// run runs cachix with args, given the token and signing key in its
// environment, after checking it and Nix by the trust rule.
func (p *cachixPusher) run(ctx context.Context, args []string, out io.Writer) error {
	env := os.Environ()
	// Without a token file, cachix uses a token it inherits: that one is
	// as secret, and is redacted the same, without the white space around
	// it (a trailing newline), which cachix's messages need not repeat.
	secret := strings.TrimSpace(os.Getenv("CACHIX_AUTH_TOKEN"))
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
	env, keySecret, err := withSigningKey(env, p.keyFile)
	if err != nil {
		return err
	}
	// cachix runs in the worker's working directory: "" (ours).
	if err := CheckCachixConfig("", env, args); err != nil {
		return err
	}
	env = withNixOnPath(env, p.nix)
	return run(ctx, p.timeout, func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		return cmd
	}, out, secret, keySecret)
}

type storePusher struct {
	nix     nixstore.Nix
	store   string
	keyFile string // secret_key_file: signs the paths as they are copied
	timeout time.Duration
}

func (p *storePusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	store, err := signingStore(p.store, p.keyFile)
	if err != nil {
		return err
	}
	// nix copy writes a file:// cache or a local store as root: checked
	// at each push, as the key files are, since it may change between
	// pushes.
	if err := config.CheckStoreDirs(p.store); err != nil {
		return err
	}
	// config.Load refuses a URI with credentials (they would be in
	// argv); should one get here another way, nix's output (which may
	// quote the URI) still reaches no log with them.
	return run(ctx, p.timeout, func(ctx context.Context) *exec.Cmd {
		return p.nix.Command(ctx, append([]string{"copy", "--to", store, "--"}, paths...)...)
	}, out, config.URISecrets(p.store)...)
}

// withNixOnPath puts nix.bin_dir first in cachix's PATH: cachix runs
// the nix-store it finds there, and only nix.bin_dir's passed the trust
// rule; one found earlier in an inherited PATH would run unchecked, as
// root, with the token in its environment. An empty PATH gets none of
// its own: its empty entry would be the working directory.
func withNixOnPath(env []string, nix nixstore.Nix) []string {
	if nix.BinDir == "" {
		return env
	}
	path, found := "", false
	env = slices.DeleteFunc(env, func(kv string) bool {
		v, ok := strings.CutPrefix(kv, "PATH=")
		if ok {
			path, found = v, true // exec keeps the last of duplicates
		}
		return ok
	})
	if !found || path == "" {
		return append(env, "PATH="+nix.BinDir)
	}
	return append(env, "PATH="+nix.BinDir+":"+path)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
