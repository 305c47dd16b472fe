package nixstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHookBugOf(t *testing.T) {
	for _, c := range []struct {
		version string
		mention string // "" for no known bug
	}{
		{"nix (Nix) 2.8.0", "#6446"},
		{"nix (Nix) 2.8.1", ""},
		{"nix (Nix) 2.29.9", ""},
		{"nix (Nix) 2.30.0", "#14287"},
		{"nix (Nix) 2.31.5", "#14287"},
		{"nix (Nix) 2.32.2", "#14287"},
		{"nix (Nix) 2.32.3", ""},
		{"nix (Nix) 2.33", ""},
	} {
		v, ok := ParseVersion(c.version)
		if !ok {
			t.Fatalf("%q: no version", c.version)
		}
		bug := HookBugOf(v)
		switch {
		case c.mention == "" && bug != nil:
			t.Errorf("%s: %q, want no known bug", v, bug.Says)
		case c.mention != "" && (bug == nil || !strings.Contains(bug.Says, c.mention) || bug.Fix == ""):
			t.Errorf("%s: %+v, want a bug mentioning %q, with a fix", v, bug, c.mention)
		}
	}
	if _, ok := ParseVersion("nix (Nix) unknown"); ok {
		t.Error("a version without numbers parsed")
	}
}

// Output (doctor's `nix --version` and `nix config show`) ends with its
// context though nix left a child holding its stdout: killing nix alone
// left the copy of stdout waiting for the child, for good.
func TestOutputHangWithChildHoldingStdout(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	killPidFile(t, pids)
	script := "#!/bin/sh\necho 'nix (Nix) 2.18.1'\nsleep 3600 &\necho $! >> " + pids + "\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	endsWithContext(t, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := Nix{BinDir: dir}.Output(ctx, "--version")
		return err
	})
}
