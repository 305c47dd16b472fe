package test

// Adversarial tests of issue 9 (trust): as root, with a real unprivileged
// user created for the test, each attack on what root runs, reads or
// pushes must fail, with real Nix builds and the cachix stand-in.

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
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// trWriteScript writes a shell script that records that it ran (in
// marker) and then runs the stand-in.
func trWriteScript(t *testing.T, path, marker string) {
	t.Helper()
	script := "#!/bin/sh\necho ran >> " + marker + "\nexec " + standinBin + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A cachix.bin another user owns is never run by the root worker (which
// would hand it the token); the entry fails saying why, and once root
// owns it, `retry` pushes.
func TestTrustUserOwnedCachixNotRun(t *testing.T) {
	u := testuser.New(t)
	e := NewEnv(t, `
cache = "c"
allow = ["*"]

[cachix]
bin = "@DIR@/bin/cachix"
auth_token_file = "@DIR@/token"
`)
	if err := os.WriteFile(filepath.Join(e.Dir, "token"), []byte("tok-"+nixtest.Salt()), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.Dir, "bin")
	os.Mkdir(bin, 0o755)
	marker := filepath.Join(e.Dir, "ran")
	cachix := filepath.Join(bin, "cachix")
	trWriteScript(t, cachix, marker)
	u.Chown(t, cachix)

	s := nixtest.Salt()
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "own-1.0", nil)))
	lastErr := trFailure(t, e)
	for _, want := range []string{"refusing " + cachix, "owned by " + u.Name, "chown root " + cachix} {
		if !strings.Contains(lastErr, want) {
			t.Errorf("last error %q lacks %q", lastErr, want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran a cachix.bin owned by another user")
	}
	// The worker updates the entries, then logs: wait for the line.
	eventually.True(t, eventually.Left(t), "the worker log to say why", func() bool { return strings.Contains(e.Log(), "refusing "+cachix) })

	// Fixed as the message says: pushed.
	if err := os.Chown(cachix, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := e.Run(t.Context(), "retry"); code != 0 {
		t.Fatalf("retry: %s", errOut)
	}
	e.Wait(eventually.Left(t))
	plExpectCache(t, "c", filepath.Join(e.Standin, "c"), paths, func(string) bool { return true })
}

// The same for a cachix.bin in a directory another user can write: they
// could replace it between pushes.
func TestTrustCachixInWritableDirNotRun(t *testing.T) {
	e := NewEnv(t, `
cache = "c"
allow = ["*"]

[cachix]
bin = "@DIR@/shared/cachix"
`)
	shared := filepath.Join(e.Dir, "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	marker := filepath.Join(e.Dir, "ran")
	trWriteScript(t, filepath.Join(shared, "cachix"), marker)
	e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "ww-1.0", nil)))
	lastErr := trFailure(t, e)
	if !strings.Contains(lastErr, "its directory "+shared+" is writable by group or others") {
		t.Errorf("last error: %q", lastErr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran a cachix.bin from a world-writable directory")
	}
	os.Chmod(shared, 0o755)
	e.Run(t.Context(), "retry")
	e.Wait(eventually.Left(t))
}

// trPlant writes a queue entry for (target, path) into dir/entries, as an
// attacker who can write the queue directory would.
func trPlant(t *testing.T, dir, target, path string) {
	t.Helper()
	p, err := storepath.Parse(storepath.StoreDir(), path)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "entries"), 0o777)
	data := fmt.Sprintf(`{"target":%q,"path":%q,"queued":"2020-01-01T00:00:00Z"}`, target, path)
	if err := os.WriteFile(filepath.Join(dir, "entries", queue.Key(target, p)), []byte(data), 0o666); err != nil {
		t.Fatal(err)
	}
}

// A queue directory someone else made first (or can write, or that is a
// symlink) is not used: the hook queues nothing and says why on the build
// log (the build succeeds), the worker refuses to run, a planted entry for
// a denied path is not pushed and a planted worker.log symlink is not
// written through.
func TestTrustForeignQueueDirRefused(t *testing.T) {
	u := testuser.New(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *Env)
		want  string
	}{
		{"owned by another user", func(t *testing.T, e *Env) {
			os.Mkdir(e.Queue, 0o700)
			u.Chown(t, e.Queue)
		}, "is owned by " + u.Name},
		{"world-writable", func(t *testing.T, e *Env) {
			os.Mkdir(e.Queue, 0o777)
			os.Chmod(e.Queue, 0o777)
		}, "group or others have access to it"},
		{"a symlink", func(t *testing.T, e *Env) {
			real := filepath.Join(e.Dir, "elsewhere")
			os.Mkdir(real, 0o700)
			os.Symlink(real, e.Queue)
		}, "is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
deny = ["secret-*"]
`)
			s := nixtest.Salt()
			secretPaths, _, _ := e.BuildWith("/bin/true", nixtest.List(nixtest.Drv(s, "secret-1.0", nil)))
			victim := filepath.Join(e.Dir, "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, e)
			// What the attacker leaves inside (as root here: the
			// directory is theirs in the first case).
			trPlant(t, e.Queue, "file://"+e.Dir+"/cache", secretPaths[0])
			os.Symlink(victim, filepath.Join(e.Queue, "worker.log"))
			filepath.Walk(e.Queue, func(p string, fi os.FileInfo, err error) error {
				if err == nil && tc.name == "owned by another user" {
					os.Lchown(p, u.Uid, u.Gid)
				}
				return nil
			})

			_, log := e.Build(nixtest.List(nixtest.Drv(s, "app-1.0", nil)))
			if !strings.Contains(log, "cachix-filter-hook: could not queue 1 paths, they will not be pushed: refusing queue directory "+e.Queue) || !strings.Contains(log, tc.want) {
				t.Errorf("build log does not say why nothing was queued:\n%s", log)
			}
			ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
			defer cancel()
			_, errOut, code := e.Run(ctx, "worker", "--once")
			if code != 1 || !strings.Contains(errOut, "refusing queue directory "+e.Queue) {
				t.Errorf("worker --once = %d, %q; want a refusal", code, errOut)
			}
			// The hook started no worker either (it would only start
			// one after queueing).
			if pids := workerPIDs(e.Queue); len(pids) > 0 {
				t.Errorf("workers %v run on a foreign queue", pids)
			}
			if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) > 0 {
				t.Errorf("pushed from a foreign queue: %v", got)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
				t.Errorf("root wrote through a planted worker.log symlink: %q", b)
			}
			// Let the cleanup's `wait` pass.
			os.RemoveAll(e.Queue)
		})
	}
}

// The rules at push time: a path queued under the old rules, denied by
// the current ones, is dropped with the rule named, not pushed; an entry
// planted for a path the rules deny is dropped the same way.
func TestTrustRulesReappliedAtPushTime(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
`)
	target := "file://" + e.Dir + "/cache"
	release := plLockQueue(t, e.Queue) // the hook queues, no worker runs
	s := nixtest.Salt()
	paths, log := e.Build(nixtest.List(nixtest.Drv(s, "hello-2.12.1", nil), nixtest.Drv(s, "other-1.0", nil)))
	if strings.Count(log, "queued 1 of 1 paths") != 2 {
		t.Fatalf("build log:\n%s", log)
	}
	byName := nixtest.ByName(paths)
	secret, _, _ := e.BuildWith("/bin/true", nixtest.List(nixtest.Drv(s, "secret-key-1.0", nil)))
	trPlant(t, e.Queue, target, secret[0])

	conf := fmt.Sprintf("store = %q\nallow = [\"*\"]\ndeny = [\"hello-*\", \"secret-*\"]\n[queue]\ndir = %q\nlinger = \"1s\"\nretry_initial = \"200ms\"\nretry_max = \"1s\"\n", target, e.Queue)
	if err := os.WriteFile(e.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := e.Run(t.Context(), "explain", byName["hello-2.12.1"]); !strings.HasPrefix(out, "skip ") {
		t.Fatalf("explain: %s", out)
	}
	release()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if _, errOut, code := e.Run(ctx, "worker", "--once"); code != 0 {
		t.Fatalf("worker --once = %d: %s\n%s", code, errOut, e.Log())
	}
	got := CachePaths(t, filepath.Join(e.Dir, "cache"))
	if got[byName["hello-2.12.1"]] || got[secret[0]] || !got[byName["other-1.0"]] {
		t.Errorf("cache holds %v; want other-1.0 only", got)
	}
	reasons := map[string]string{}
	for _, en := range plReadEntries(t, filepath.Join(e.Queue, "dropped")) {
		reasons[en.Path] = en.Reason
	}
	if r := reasons[byName["hello-2.12.1"]]; r != `no longer selected: deny "hello-*"` {
		t.Errorf("hello dropped with %q", r)
	}
	if r := reasons[secret[0]]; r != `no longer selected: deny "secret-*"` {
		t.Errorf("planted entry dropped with %q", r)
	}
}

// trFailure waits for a failing entry and returns its last error.
func trFailure(t *testing.T, e *Env) string {
	t.Helper()
	var lastErr string
	eventually.True(t, eventually.Left(t), "the entry to fail with a refusal", func() bool {
		_, st := plStatusJSON(t, e)
		for _, tg := range st.Targets {
			for _, f := range tg.Failures {
				lastErr = f.LastError
			}
		}
		return lastErr != ""
	})
	return lastErr
}

// A hook.conf another user owns (who could allow what root's rules deny,
// or point cachix.bin at their program) is not used: the hook queues
// nothing, says why on the build log, and the build succeeds.
func TestTrustUserOwnedConfigRefused(t *testing.T) {
	u := testuser.New(t)
	e := NewEnv(t, `
cache = "c"
allow = ["*"]
`)
	u.Chown(t, e.Conf)
	paths, log := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "conf-1.0", nil)))
	if len(paths) != 1 {
		t.Fatalf("the build failed: %q\n%s", paths, log)
	}
	for _, want := range []string{"not queueing anything", e.Conf, "owned by " + u.Name} {
		if !strings.Contains(log, want) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}
	if n := e.QueueEntries(); n != 0 {
		t.Errorf("%d entries queued from a config another user owns", n)
	}
	if _, errOut, code := e.Run(t.Context(), "validate"); code == 0 || !strings.Contains(errOut, "owned by "+u.Name) {
		t.Errorf("validate exited %d:\n%s", code, errOut)
	}
}

// A token file another user owns, or that others can read, is not handed
// to cachix: the push fails saying why, the stand-in never runs with it,
// and once root's own and private, retry pushes.
func TestTrustUnsafeTokenFileRefused(t *testing.T) {
	u := testuser.New(t)
	e := NewEnv(t, `
cache = "c"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
auth_token_file = "@DIR@/token"
`)
	token := filepath.Join(e.Dir, "token")
	secret := "tok-" + nixtest.Salt()
	if err := os.WriteFile(token, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, token)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "tokown-1.0", nil)))
	if err := trFailure(t, e); !strings.Contains(err, token) || !strings.Contains(err, "owned by "+u.Name) {
		t.Errorf("last error: %q", err)
	}
	// Root's own, but readable by others: still refused.
	if err := os.Chown(token, 0, 0); err != nil {
		t.Fatal(err)
	}
	os.Chmod(token, 0o644)
	e.Run(t.Context(), "retry")
	eventually.True(t, eventually.Left(t), "the refusal of a token others can read", func() bool {
		_, st := plStatusJSON(t, e)
		for _, tg := range st.Targets {
			for _, f := range tg.Failures {
				if strings.Contains(f.LastError, "readable by") || strings.Contains(f.LastError, "others can read") {
					return true
				}
			}
		}
		return false
	})
	if n := len(e.Invocations()); n != 0 {
		t.Fatalf("cachix ran %d times with an unsafe token file", n)
	}
	os.Chmod(token, 0o600)
	e.Run(t.Context(), "retry")
	e.Wait(eventually.Left(t))
	plExpectCache(t, "c", filepath.Join(e.Standin, "c"), paths, func(string) bool { return true })
	for _, inv := range e.Invocations() {
		for _, a := range inv.Argv {
			if strings.Contains(a, secret) {
				t.Fatalf("the token is in cachix's argv: %q", inv.Argv)
			}
		}
	}
}

// nix.bin_dir in a directory another user owns (who could put their own
// nix there, which root would run to copy paths) is refused: nothing is
// run from it.
func TestTrustUserOwnedNixBinDirRefused(t *testing.T) {
	u := testuser.New(t)
	bin := filepath.Join(t.TempDir(), "nixbin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	marker := filepath.Join(t.TempDir(), "ran")
	for _, prog := range []string{"nix", "nix-store"} {
		script := "#!/bin/sh\necho ran >> " + marker + "\nexec /usr/bin/" + prog + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(bin, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u.Chown(t, bin)
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]

[nix]
bin_dir = "`+bin+`"
`)
	e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "nixbin-1.0", nil)))
	if err := trFailure(t, e); !strings.Contains(err, bin) || !strings.Contains(err, "owned by "+u.Name) {
		t.Errorf("last error: %q", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran nix from a directory another user owns")
	}
	if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) != 0 {
		t.Errorf("pushed %d paths through an untrusted nix", len(got))
	}
	// Fixed as the message says: pushed.
	if err := os.Chown(bin, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.Run(t.Context(), "retry")
	e.Wait(eventually.Left(t))
	if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) != 1 {
		t.Errorf("after the fix the cache holds %d paths, want 1", len(got))
	}
}

// A relative --config or CACHIX_FILTER_HOOK_CONFIG reaches the worker
// that push starts, which runs in /, as an absolute path: the path is
// pushed (with the relative name, the worker found no config and pushed
// nothing, saying nothing).
func TestTrustRelativeConfigReachesWorker(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
`)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "rel-1.0", nil)))
	e.Wait(eventually.Left(t))
	cache := filepath.Join(e.Dir, "cache")
	for _, how := range []string{"--config", "CACHIX_FILTER_HOOK_CONFIG"} {
		killWorkers(e.Queue)
		if err := os.RemoveAll(cache); err != nil {
			t.Fatal(err)
		}
		args := []string{"push", "--force", paths[0]}
		var env []string
		for _, kv := range e.environ() {
			if !strings.HasPrefix(kv, "CACHIX_FILTER_HOOK_CONFIG=") {
				env = append(env, kv)
			}
		}
		if how == "--config" {
			args = append([]string{"--config", "hook.conf"}, args...)
		} else {
			env = append(env, "CACHIX_FILTER_HOOK_CONFIG=hook.conf")
		}
		cmd := exec.Command(hookBin, args...)
		cmd.Dir, cmd.Env = e.Dir, env
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "queued 1 of 1 paths") {
			t.Fatalf("push with a relative %s: %v\n%s", how, err, out)
		}
		eventually.True(t, eventually.Left(t), "the worker started with a relative "+how+" to push", func() bool {
			return CachePaths(t, cache)[paths[0]]
		})
	}
}
