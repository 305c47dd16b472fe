package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// wxDaemon serves the host's store to other users the way a multi-user
// install does: a unix socket, and for each connection a nix-daemon (as
// root, on the host's real store) speaking the protocol on it. The host's
// Nix is single-user and its usual socket is left alone, so parallel
// tests are not affected. It returns the store URI for NIX_REMOTE.
func wxDaemon(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "daemon.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var procs []*os.Process
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f, err := c.(*net.UnixConn).File()
			c.Close()
			if err != nil {
				continue
			}
			// The machine's post-build-hook (on a user's machine, this
			// program) must not run for the test's builds.
			cmd := exec.Command("nix-daemon", "--stdio", "--option", "post-build-hook", "")
			cmd.Stdin, cmd.Stdout = f, f
			cmd.Stderr = io.Discard
			if err := cmd.Start(); err != nil {
				f.Close()
				continue
			}
			f.Close()
			mu.Lock()
			procs = append(procs, cmd.Process)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); cmd.Wait() }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, p := range procs {
			p.Kill()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "unix://" + sock
}

// watch-exec run by a user who is not root and cannot set the hook, on a
// multi-user store: it pushes the paths of that build that the user's own
// rules select, and only those; its exit status is the command's.
func TestWatchExecAsNonRootUser(t *testing.T) {
	nixtest.Require(t)
	u := testuser.New(t)
	// Everything the user needs must be reachable by them: not under the
	// test's private temporary directory.
	base, err := os.MkdirTemp("", "cfh-watchexec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	remote := wxDaemon(t, base)
	bin := filepath.Join(base, "cachix-filter-hook")
	data, err := os.ReadFile(hookBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, home)

	s := nixtest.Salt()
	app, doc, other := "wx"+s+"-app-1.0", "wx"+s+"-app-1.0-doc", "wx"+s+"-other-1.0"
	cache := filepath.Join(home, "cache")
	files := map[string]string{
		".config/cachix-filter-hook/hook.conf": fmt.Sprintf("store = %q\nallow = [\"wx%s-app-*\"]\ndeny = [\"*-doc\"]\n[queue]\nlinger = \"1s\"\n", "file://"+cache, s),
		"build.nix":                            fmt.Sprintf("[ (%s) (%s) (%s) ]", nixtest.Drv(s, app, nil), nixtest.Drv(s, doc, nil), nixtest.Drv(s, other, nil)),
	}
	for name, content := range files {
		p := filepath.Join(home, name)
		for d := filepath.Dir(p); d != home; d = filepath.Dir(d) {
			os.MkdirAll(d, 0o700)
			u.Chown(t, d)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		u.Chown(t, p)
	}

	run := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = home
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + home, "USER=" + u.Name,
			"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
			"XDG_STATE_HOME=" + filepath.Join(home, ".local/state"),
			"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
			"NIX_REMOTE=" + remote,
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running %v: %v", args, err)
		}
		return stdout.String(), stderr.String(), code
	}
	queue := filepath.Join(home, ".local/state/cachix-filter-hook")
	t.Cleanup(func() { killWorkers(queue) })

	out, errOut, code := run("watch-exec", "--wait", "--timeout", eventually.Left(t).String(), "--", "nix-build", "build.nix", "--no-out-link", "--option", "substituters", "")
	if code != 0 {
		t.Fatalf("watch-exec exited %d:\n%s%s", code, out, errOut)
	}
	built := nixtest.ByName(strings.Fields(out))
	if built[app] == "" || built[doc] == "" || built[other] == "" {
		t.Fatalf("nix-build printed %q", out)
	}
	got := CachePaths(t, cache)
	if len(got) != 1 || !got[built[app]] {
		t.Errorf("cache holds %v, want only %s\n%s", scSet(got), built[app], errOut)
	}
	if !strings.Contains(errOut, "pushed 1 path to file://"+cache) {
		t.Errorf("no summary of the push:\n%s", errOut)
	}
	// Other tests build concurrently on this store: watch-exec sees their
	// paths too, and the rules leave them out, as they did the -doc
	// output and the path no allow rule matches.
	// The paths were found by watching, not handed over by a hook: the
	// queue is the user's own.
	if fi, err := os.Stat(queue); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(u.Uid) {
		t.Errorf("queue %s is not the user's: %v", queue, err)
	}

	// The exit status is the command's, and a command that builds
	// nothing queues nothing.
	_, errOut, code = run("watch-exec", "--", "sh", "-c", "exit 3")
	if code != 3 {
		t.Errorf("watch-exec -- sh -c 'exit 3' exited %d:\n%s", code, errOut)
	}

	// doctor tells this user they are not trusted, and what to do.
	out, _, _ = run("doctor")
	if !strings.Contains(out, "is not a trusted Nix user") || !strings.Contains(out, "watch-exec") {
		t.Errorf("doctor as %s:\n%s", u.Name, out)
	}
}
