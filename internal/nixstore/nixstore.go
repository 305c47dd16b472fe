// Package nixstore runs the few Nix commands the tool needs, always with an
// argv, never through a shell.
package nixstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// fallbackDirs are where Nix lives when PATH does not say: nix-daemon's
// environment on NixOS and on multi-user installs often lacks it.
var fallbackDirs = []string{"/run/current-system/sw/bin", "/nix/var/nix/profiles/default/bin"}

// Nix locates and runs nix and nix-store.
type Nix struct {
	// BinDir, when set, is the only place looked at.
	BinDir string
}

// Bin returns the path of a Nix program.
func (n Nix) Bin(name string) string {
	if n.BinDir != "" {
		return filepath.Join(n.BinDir, name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range fallbackDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// Trusted returns the real path of a Nix program (symlinks resolved)
// after checking it by the trust rule (see package trust): the caller may
// run as root, and runs it from that path, which nobody else can change.
func (n Nix) Trusted(name string) (string, error) {
	p := n.Bin(name)
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%s not found (on PATH, or in %s); set nix.bin_dir", name, strings.Join(fallbackDirs, " or "))
	}
	return trust.Check(p, trust.Program)
}

// command prepares the Nix program name run from its checked real path,
// with argv[0] as found (nix-store is a link to nix, which tells the two
// apart by it). One that fails the trust rule is not run: the command's
// Start returns why.
func (n Nix) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	real, err := n.Trusted(name)
	cmd := exec.CommandContext(ctx, n.Bin(name), args...)
	cmd.Env = nixEnv(os.Environ())
	if err != nil {
		cmd.Err = err
	} else {
		cmd.Path = real
	}
	return cmd
}

// cachixSecrets are the variables cachix reads its secrets from, which
// the worker may inherit: Nix has no use for them, so it does not get
// them.
var cachixSecrets = []string{"CACHIX_AUTH_TOKEN=", "CACHIX_SIGNING_KEY="}

// nixEnv returns env without cachix's secrets.
func nixEnv(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		return slices.ContainsFunc(cachixSecrets, func(p string) bool { return strings.HasPrefix(kv, p) })
	})
}

// Command prepares a nix-command invocation with the experimental
// feature enabled, which Nix 2.8 requires for `nix copy`. A nix that fails
// the trust rule is not run: the command's Start returns why.
func (n Nix) Command(ctx context.Context, args ...string) *exec.Cmd {
	return n.command(ctx, "nix", append([]string{"--extra-experimental-features", "nix-command"}, args...)...)
}

// maxQueryOutput bounds what one nix-store --query may print: a
// derivation's outputs, or the paths of one argv, are far less.
const maxQueryOutput = 16 << 20

func (n Nix) query(ctx context.Context, args ...string) ([]string, error) {
	// Ended early when the output passes its bound: Nix would otherwise
	// wait on a full pipe until ctx ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := n.command(ctx, "nix-store", args...)
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	var stderr tail
	cmd.Stderr = &stderr
	// Once ctx ends, nothing Nix started may keep stdout open.
	g := inGroup(cmd)
	cmd.WaitDelay = waitDelay
	// Read as pathInfo reads (a closure's list is a megabyte).
	pipe, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	var out []byte
	if err == nil {
		out, err = readAll(io.LimitReader(pipe, maxQueryOutput+1))
		if err == nil && len(out) > maxQueryOutput {
			cancel() // Wait then says "killed": said here instead
			_ = g.End()
			err = fmt.Errorf("output past %d bytes", maxQueryOutput)
		} else if werr := g.End(); werr != nil || err != nil {
			err = errors.Join(werr, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nix-store %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.Fields(string(out)), nil
}

// Outputs lists the output paths of a derivation. The hook needs it
// because Nix 2.8 passes OUT_PATHS empty (NixOS/nix#6446).
func (n Nix) Outputs(ctx context.Context, drv string) ([]string, error) {
	return n.query(ctx, "--query", "--outputs", "--", drv)
}

// Closure lists the runtime closure of paths, the paths themselves
// included, each root's breadth-first (ClosureOf), and fails on a path
// not in the store, as `nix-store --query --requisites` does. It walks
// the closure as Closures does, through `nix-store --serve` (serve.go),
// a process per core for a big level: `push --closure` of
// bench/closure.nix's 10,000 paths, all recorded as pushed (so that
// this is its one Nix call), went from 421 ms with `--requisites` to
// 323 ms, against 382 ms for `nix-store --query --requisites` alone
// (`hyperfine -N --runs 10`, one series, a 2-core VM).
func (n Nix) Closure(ctx context.Context, paths ...string) ([]string, error) {
	of, err := n.Closures(ctx, paths...)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, root := range paths {
		c, ok := of[root]
		if !ok {
			return nil, fmt.Errorf("%s is not in the store", root)
		}
		for _, p := range c {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}
