package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// Issue 18, defect 13: watch-exec queued what another user added to the
// store while it watched: their `nix-store --add` of a secret file was
// pushed under allow = ["*"]. Here, while watch-exec waits on its
// command, the test builds a path, another real user adds a secret
// through a nix-daemon, and builtins.path adds a directory: only the
// build goes up. With --include-added, the added paths go too. A
// fixed-output derivation built here is content-addressed and unsigned,
// as another user's import is, but Nix says it built it (ultimate): it
// goes up as a build.
func TestWatchExecLeavesOutAdded(t *testing.T) {
	nixtest.Require(t)
	u := testuser.New(t)
	base, err := os.MkdirTemp("", "cfh-watchadded-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	remote := wxDaemon(t, base)
	e := NewEnv(t, "store = \"file://@DIR@/cache\"\nallow = [\"*\"]\n")

	round := func(t *testing.T, includeAdded bool) (built, fixed, secret, imported string, errOut string) {
		s := nixtest.Salt()
		done := filepath.Join(e.Dir, "done-"+s)
		args := []string{"watch-exec", "--wait", "--timeout", eventually.Left(t).String()}
		if includeAdded {
			args = append(args, "--include-added")
		}
		args = append(args, "--", "sh", "-c", "while [ ! -e "+done+" ]; do sleep 0.05; done")
		ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
		defer cancel()
		cmd := exec.CommandContext(ctx, hookBin, args...)
		cmd.Env = e.environ()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// watch-exec watches before it runs the command: once the
		// command runs, so does the watch.
		eventually.True(t, eventually.Left(t), "watch-exec's command to start", func() bool {
			out, _ := exec.Command("pgrep", "-f", done).Output()
			return len(bytes.TrimSpace(out)) > 0
		})

		// The other user's secret, added through the daemon.
		userFile := filepath.Join(base, "secret-"+s)
		if err := os.WriteFile(userFile, []byte("password "+s), 0o644); err != nil {
			t.Fatal(err)
		}
		add := exec.Command("nix-store", "--add", userFile)
		add.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "NIX_REMOTE=" + remote}
		add.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
		out, err := add.Output()
		if err != nil {
			t.Fatalf("nix-store --add as %s: %v", u.Name, err)
		}
		secret = strings.TrimSpace(string(out))
		// builtins.path of a directory.
		dir := filepath.Join(e.Dir, "src-"+s)
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "f"), []byte(s), 0o644)
		out, err = exec.Command("nix-instantiate", "--eval", "--read-write-mode", "-E", fmt.Sprintf(`"${builtins.path { path = %s; name = "src-%s"; }}"`, dir, s)).Output()
		if err != nil {
			t.Fatalf("builtins.path: %v", err)
		}
		imported = strings.Trim(strings.TrimSpace(string(out)), `"`)
		paths, _, _ := e.BuildWith("/bin/true", nixtest.Drv(s, "watched-1.0", nil))
		built = paths[0]
		content := "fixed " + s + "\n"
		paths, _, _ = e.BuildWith("/bin/true", fmt.Sprintf(`derivation { name = "fixed-%s"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo fixed %s > $out" ]; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "%x"; }`, s, s, sha256.Sum256([]byte(content))))
		fixed = paths[0]

		if err := os.WriteFile(done, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("watch-exec: %v\n%s", err, stderr.String())
		}
		return built, fixed, secret, imported, stderr.String()
	}

	built, fixed, secret, imported, errOut := round(t, false)
	got := CachePaths(t, filepath.Join(e.Dir, "cache"))
	if !got[built] || !got[fixed] || got[secret] || got[imported] {
		t.Errorf("cache holds %v; want %s and %s, and neither %s nor %s\n%s", scSet(got), built, fixed, secret, imported, errOut)
	}
	if !strings.Contains(errOut, "added to the store while COMMAND ran") || !strings.Contains(errOut, secret) || !strings.Contains(errOut, imported) || !strings.Contains(errOut, "--include-added") {
		t.Errorf("watch-exec does not say what it left out:\n%s", errOut)
	}

	built, _, secret, imported, errOut = round(t, true)
	got = CachePaths(t, filepath.Join(e.Dir, "cache"))
	if !got[built] || !got[secret] || !got[imported] {
		t.Errorf("with --include-added, cache holds %v; want %s, %s and %s\n%s", scSet(got), built, secret, imported, errOut)
	}
}
