package nixstore

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Version is a Nix version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compiled on first use: package init runs on every start, the hook's too.
var versionRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`) })

// ParseVersion reads the version `nix --version` prints ("nix (Nix)
// 2.18.1").
func ParseVersion(s string) (Version, bool) {
	m := versionRe().FindStringSubmatch(s)
	if m == nil {
		return Version{}, false
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	return v, true
}

// HookBug is a bug of Nix's post-build-hook in some versions. The hook
// lives with each (it reads DRV_PATH when OUT_PATHS is empty); doctor
// names them.
type HookBug struct {
	Says, Fix string
}

// hookBugs are the known ones, by the versions they affect.
var hookBugs = []struct {
	affects func(v Version) bool
	bug     func(v Version) HookBug
}{
	{
		func(v Version) bool { return v.Major == 2 && v.Minor == 8 && v.Patch == 0 },
		func(Version) HookBug {
			return HookBug{"Nix 2.8.0 passes OUT_PATHS empty to the hook (NixOS/nix#6446); the hook reads the outputs from DRV_PATH instead, which costs a little per build", "upgrade Nix to 2.8.1 or later"}
		},
	},
	{
		func(v Version) bool {
			return v.Major == 2 && (v.Minor == 30 || v.Minor == 31 || (v.Minor == 32 && v.Patch < 3))
		},
		func(v Version) HookBug {
			return HookBug{"Nix " + v.String() + " passes OUT_PATHS empty on --check and --rebuild builds (NixOS/nix#14287); the hook reads the outputs from DRV_PATH instead", "upgrade Nix to 2.32.3, or 2.33 or later"}
		},
	},
}

// HookBugOf returns the post-build-hook bug of Nix v, nil when none is
// known.
func HookBugOf(v Version) *HookBug {
	for _, b := range hookBugs {
		if b.affects(v) {
			bug := b.bug(v)
			return &bug
		}
	}
	return nil
}

// Output runs nix with args, bounded in time by ctx and in output (1 MiB
// of stdout, 4 KiB of stderr for the error).
func (n Nix) Output(ctx context.Context, args ...string) (string, error) {
	cmd := n.Command(ctx, args...)
	var out, stderr limitedBuffer
	out.max, stderr.max = 1<<20, 4<<10
	cmd.Stdout, cmd.Stderr = &out, &stderr
	// Once ctx ends, nothing nix started may keep stdout open, and Run
	// waiting for it.
	g := inGroup(cmd)
	cmd.WaitDelay = waitDelay
	err := cmd.Start()
	if err == nil {
		err = g.End()
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s %s: %w: %s", cmd.Path, strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("%s %s: %w", cmd.Path, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	strings.Builder
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Builder.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Settings reads Nix's effective settings: `nix config show` on newer
// Nix, `nix show-config` on older.
func (n Nix) Settings(ctx context.Context) (map[string]string, error) {
	out, err := n.Output(ctx, "config", "show")
	if err != nil {
		var err2 error
		if out, err2 = n.Output(ctx, "show-config"); err2 != nil {
			return nil, err2
		}
	}
	settings := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			settings[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return settings, nil
}
