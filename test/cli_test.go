package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// push PATH --config X queues under X (issue 18 item 8): a flag after a
// path is a flag. Before, --config and X were taken as paths, and the
// valid path was queued under the config found without it, for its cache,
// before push failed. A real build, two configs with their own queues and
// caches, a real worker.
func TestPushFlagAfterPath(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/default-cache"
allow = ["*"]
`)
	other := filepath.Join(e.Dir, "other.conf")
	otherQueue := filepath.Join(e.Dir, "other-queue")
	conf := fmt.Sprintf("store = \"file://%s/other-cache\"\nallow = [\"*\"]\n[queue]\ndir = %q\nlinger = \"1s\"\n", e.Dir, otherQueue)
	if err := os.WriteFile(other, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killWorkers(otherQueue) })
	// Built without our hook: only push queues it.
	paths, _, _ := e.BuildWith("/bin/true", nixtest.Drv(nixtest.Salt(), "hello-2.12.1", nil))
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, "push", paths[0], "--config", other, "--wait", "--timeout", eventually.Left(t).String())
	if code != 0 {
		t.Fatalf("push PATH --config X exited %d:\n%s%s", code, out, errOut)
	}
	if !CachePaths(t, filepath.Join(e.Dir, "other-cache"))[paths[0]] {
		t.Errorf("%s is not in the cache of --config's target:\n%s%s", paths[0], out, errOut)
	}
	if n := e.QueueEntries(); n != 0 {
		t.Errorf("%d entries in the queue of the config found without --config", n)
	}
	if got := CachePaths(t, filepath.Join(e.Dir, "default-cache")); len(got) > 0 {
		t.Errorf("pushed to the cache of the config found without --config: %v", got)
	}
}

// make build stamps the version git describe gives; make install puts the
// binary, the man page and the completions where the shells look.
func TestMakeBuildAndInstall(t *testing.T) {
	for _, p := range []string{"make", "git"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed, and CI=true", p)
			}
			t.Skipf("%s is not installed", p)
		}
	}
	describe, err := exec.Command("git", "-C", repoRoot, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git describe in %s: %v (CI runs in a clone)", repoRoot, err)
		}
		t.Skipf("%s is not a git checkout: %v", repoRoot, err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cachix-filter-hook")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-C", repoRoot, "OUT=" + bin}, args...)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("build")
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "cachix-filter-hook " + strings.TrimSpace(string(describe)) + "\n"; string(out) != want {
		t.Errorf("make build's binary says %q, want %q", out, want)
	}

	root := filepath.Join(dir, "root")
	run("install", "DESTDIR="+root, "PREFIX=/usr")
	man, err := os.ReadFile(filepath.Join(root, "usr/share/man/man1/cachix-filter-hook.1"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(filepath.Join(repoRoot, "cachix-filter-hook.1")); string(man) != string(want) {
		t.Errorf("the installed man page is not cachix-filter-hook.1")
	}
	for _, f := range []string{"usr/bin/cachix-filter-hook", "usr/share/bash-completion/completions/cachix-filter-hook",
		"usr/share/zsh/site-functions/_cachix-filter-hook", "usr/share/fish/vendor_completions.d/cachix-filter-hook.fish"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Size() == 0 {
			t.Errorf("make install: %s missing or empty (%v)", f, err)
		}
	}
	// bash-completion loads the file by the command's name.
	script := "source " + filepath.Join(root, "usr/share/bash-completion/completions/cachix-filter-hook") + " && complete -p cachix-filter-hook"
	if out, err := exec.Command("bash", "--norc", "-c", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "-F _cachix_filter_hook") {
		t.Errorf("the installed bash completion: %v %s", err, out)
	}
}
