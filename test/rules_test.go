package test

// The rules that look beyond a path's name (issue 13): max_nar_size,
// unsubstitutable, upstream, and signing, each through the hook, push,
// push --closure and explain, with real Nix builds, real binary caches
// written by nix copy, an upstream served over HTTP on 127.0.0.1 by the
// test, and keys made by nix-store --generate-binary-cache-key. Helpers
// are prefixed with ru.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// ruBig is a derivation whose output is 64 KiB and a bit: larger than a
// max_nar_size of 16KiB. The shell doubles a string 16 times (no program
// but /bin/sh is needed).
func ruBig(salt, name string) string {
	return fmt.Sprintf(`derivation { name = %q; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "s=x; i=0; while [ $i -lt 16 ]; do s=$s$s; i=$((i+1)); done; echo %s $s > $out" ]; }`, name, salt)
}

// ruLocal is a derivation with allowSubstitutes = false, as trivial
// builders (writeText, runCommandLocal) set; structured puts it in
// __structuredAttrs' JSON instead.
func ruLocal(salt, name string, structured bool, deps ...string) string {
	if structured {
		// With structured attrs there is no $out: bash reads the
		// outputs from .attrs.sh.
		return fmt.Sprintf(`derivation { __structuredAttrs = true; allowSubstitutes = false; name = %q; system = builtins.currentSystem; builder = "/bin/bash"; args = [ "-c" ". .attrs.sh; echo %s > \${outputs[out]}" ]; }`, name, salt)
	}
	d := nixtest.Drv(salt, name, nil, deps...)
	return strings.Replace(d, "derivation { ", "derivation { allowSubstitutes = false; ", 1)
}

// ruRun is scRun with a check of the exit status.
func ruRun(t *testing.T, e *Env, want int, args ...string) (string, string) {
	t.Helper()
	out, errOut, code := scRun(t, e, "", "", args...)
	if code != want {
		t.Fatalf("%v exited %d, want %d:\n%s%s\nworker log:\n%s", args, code, want, out, errOut, e.Log())
	}
	return out, errOut
}

// ruLine returns the line of text that mentions path, or "".
func ruLine(text, path string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, path) {
			return l
		}
	}
	return ""
}

// ruDropped returns the reasons queue/dropped gives for path, by target.
func ruDropped(t *testing.T, e *Env, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, en := range plReadEntries(t, filepath.Join(e.Queue, "dropped")) {
		if en.Path == path {
			out[en.Target] = en.Reason
		}
	}
	return out
}

// ruExplainJSON is the part of explain --json these tests read.
type ruExplainJSON []struct {
	Path    string   `json:"path"`
	Push    []string `json:"push"`
	Targets []struct {
		Target   string   `json:"target"`
		Selected bool     `json:"selected"`
		Rule     string   `json:"rule"`
		Check    string   `json:"check"`
		Notes    []string `json:"notes"`
	} `json:"targets"`
	Facts *struct {
		NarSize     int64           `json:"nar_size"`
		Substitutes string          `json:"substitutes"`
		Deriver     string          `json:"deriver"`
		Upstream    map[string]bool `json:"upstream"`
	} `json:"facts"`
}

func ruExplain(t *testing.T, e *Env, paths ...string) ruExplainJSON {
	t.Helper()
	out, _ := ruRun(t, e, 0, append([]string{"explain", "--json"}, paths...)...)
	var v ruExplainJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	return v
}

const ruSizeLimit = "limit 16.0 KiB"

// max_nar_size through the hook, under both closure rules: the large path
// is never pushed by itself; an app that depends on it is dropped with
// closure_deny = "skip" and pushed (its closure, the large path inside,
// going up) with "push".
func TestRulesSizeHook(t *testing.T) {
	t.Parallel()
	e := NewEnv(t, `
max_nar_size = "16KiB"

[[target]]
store = "file://@DIR@/skip"
name = "skipper"
allow = ["big-*", "app-*", "small-*"]
closure_deny = "skip"

[[target]]
store = "file://@DIR@/push"
name = "pusher"
allow = ["big-*", "app-*", "small-*"]
closure_deny = "push"
`)
	s := nixtest.Salt()
	paths, _ := e.Build(fmt.Sprintf("let big = %s; in [ big (%s) (%s) ]",
		ruBig(s, "big-1.0"), nixtest.Drv(s, "app-1.0", nil, "big"), nixtest.Drv(s, "small-1.0", nil)))
	byName := nixtest.ByName(paths)
	big, app, small := byName["big-1.0"], byName["app-1.0"], byName["small-1.0"]
	// Dropped: big by both targets, app by the skipper.
	e.WaitDropped(60*time.Second, false, big, big, app)

	if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "skip"))), scPaths(small); !reflect.DeepEqual(got, want) {
		t.Errorf("skip cache holds %v, want %v", got, want)
	}
	if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "push"))), scPaths(small, app, big); !reflect.DeepEqual(got, want) {
		t.Errorf("push cache holds %v, want %v (the large path inside app's closure)", got, want)
	}
	for target, reason := range ruDropped(t, e, big) {
		if !strings.HasPrefix(reason, "larger than max_nar_size (NAR 64.") || !strings.Contains(reason, ruSizeLimit) {
			t.Errorf("%s dropped %s with %q, want the rule and both figures", target, big, reason)
		}
	}
	if n := len(ruDropped(t, e, big)); n != 2 {
		t.Errorf("%s dropped by %d targets, want 2", big, n)
	}
	reasons := ruDropped(t, e, app)
	if r := reasons["skipper"]; !strings.Contains(r, `closure_deny = "skip"`) || !strings.Contains(r, big) || !strings.Contains(r, "larger than max_nar_size") {
		t.Errorf("skipper dropped %s with %q, want closure_deny, the large dependency and the rule", app, r)
	}
	if r, ok := reasons["pusher"]; ok {
		t.Errorf("pusher dropped %s: %s", app, r)
	}
	if log := e.Log(); !strings.Contains(log, "larger than max_nar_size") {
		t.Errorf("worker log does not say why:\n%s", log)
	}
	// closure_deny = "push" says what it uploads besides the path.
	if l := ruLine(e.Log(), "uploading a path larger than max_nar_size inside the closure"); !strings.Contains(l, app) || !strings.Contains(l, big) || !strings.Contains(l, "target=pusher") {
		t.Errorf("worker log does not say the pusher uploads %s inside %s: %q\n%s", big, app, l, e.Log())
	}
}

// max_nar_size through push, push --closure and explain.
func TestRulesSizePushAndExplain(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, fmt.Sprintf("let big = %s; in [ big (%s) (%s) ]",
		ruBig(s, "big-1.0"), nixtest.Drv(s, "app-1.0", nil, "big"), nixtest.Drv(s, "small-1.0", nil)))
	big, app, small := built["big-1.0"], built["app-1.0"], built["small-1.0"]
	conf := func(mode string) string {
		return `
store = "file://@DIR@/cache"
allow = ["big-*", "app-*", "small-*"]
max_nar_size = "16KiB"
closure_deny = "` + mode + `"
`
	}

	t.Run("explain", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("skip"))
		out, _ := ruRun(t, e, 0, "explain", big, app)
		if l := ruLine(out, big); !strings.HasPrefix(l, "skip "+big+" (larger than max_nar_size (NAR 64.") || !strings.Contains(l, ruSizeLimit) {
			t.Errorf("explain of the large path: %q", l)
		}
		// The app depends on the large path: closure_deny = "skip" leaves
		// it out, as the worker does (issue 13).
		if l := ruLine(out, "skip "+app); !strings.HasPrefix(l, "skip "+app+` (closure_deny = "skip": its closure contains `+big+", larger than max_nar_size (NAR 64.") {
			t.Errorf("explain of the app: %q", l)
		}
		v := ruExplain(t, e, big)
		if len(v) != 1 || v[0].Facts == nil || v[0].Facts.NarSize <= 16<<10 || v[0].Targets[0].Check != "max_nar_size" || v[0].Targets[0].Selected {
			t.Errorf("explain --json: %+v", v)
		}
	})

	t.Run("push", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("skip"))
		out, _ := ruRun(t, e, 0, "push", "--wait", big, small)
		if !strings.Contains(out, "queued 1 of 2 paths") || !strings.Contains(out, "skipped big-1.0: larger than max_nar_size (NAR 64.") {
			t.Errorf("push says:\n%s", out)
		}
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(small); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
	})

	t.Run("closure-skip", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("skip"))
		// The closure rule applies before queueing: app is not queued,
		// and the line says why (issue 18).
		out, _ := ruRun(t, e, 0, "push", "--closure", "--wait", app)
		if !strings.Contains(out, "queued 0 of 2 paths") || !strings.Contains(out, "big-1.0: larger than max_nar_size") {
			t.Errorf("push --closure does not say why the large path is skipped:\n%s", out)
		}
		if !strings.Contains(out, `app-1.0: closure_deny = "skip": its closure contains `+big) {
			t.Errorf("push --closure does not say why %s is skipped:\n%s", app, out)
		}
		if r := ruDropped(t, e, app); len(r) != 0 {
			t.Errorf("dropped: %v; push queued what the rules drop", r)
		}
		if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) != 0 {
			t.Errorf("cache holds %v, want nothing", scSet(got))
		}
	})

	t.Run("closure-push", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("push"))
		ruRun(t, e, 0, "push", "--closure", "--wait", app)
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(app, big); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
	})
}

// unsubstitutable through the hook (which reads the .drv, no exec), push,
// push --closure and explain, for allowSubstitutes = false in the
// environment and in __structuredAttrs; unsubstitutable = "push" pushes
// them; a path whose .drv is gone counts as substitutable.
func TestRulesUnsubstitutable(t *testing.T) {
	t.Parallel()
	conf := func(mode string) string {
		return `
store = "file://@DIR@/cache"
allow = ["local-*", "struct-*", "normal-*", "app-*"]
unsubstitutable = "` + mode + `"
`
	}
	expr := func(s string) string {
		return fmt.Sprintf("let local = %s; in [ local (%s) (%s) (%s) ]",
			ruLocal(s, "local-1.0", false), ruLocal(s, "struct-1.0", true), nixtest.Drv(s, "normal-1.0", nil), nixtest.Drv(s, "app-1.0", nil, "local"))
	}

	t.Run("hook", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("skip"))
		paths, log := e.Build(expr(nixtest.Salt()))
		byName := nixtest.ByName(paths)
		for _, n := range []string{"local-1.0", "struct-1.0"} {
			if !strings.Contains(log, "skipped "+n+`: allowSubstitutes = false (unsubstitutable = "skip")`) {
				t.Errorf("the hook's line does not say why %s is skipped:\n%s", n, log)
			}
		}
		e.Wait(eventually.Left(t))
		// app's closure holds local: nix copy uploads it inside.
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(byName["normal-1.0"], byName["app-1.0"], byName["local-1.0"]); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
		if _, ok := CachePaths(t, filepath.Join(e.Dir, "cache"))[byName["struct-1.0"]]; ok {
			t.Errorf("the __structuredAttrs path was pushed")
		}
	})

	t.Run("hook-push", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("push"))
		paths, log := e.Build(expr(nixtest.Salt()))
		if strings.Contains(log, "allowSubstitutes") {
			t.Errorf("unsubstitutable = push skipped something:\n%s", log)
		}
		e.Wait(eventually.Left(t))
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(paths...); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want everything: %v", got, want)
		}
	})

	t.Run("push-explain-closure", func(t *testing.T) {
		t.Parallel()
		built := scBuild(t, expr(nixtest.Salt()))
		local, strct, normal, app := built["local-1.0"], built["struct-1.0"], built["normal-1.0"], built["app-1.0"]
		e := NewEnv(t, conf("skip"))
		out, _ := ruRun(t, e, 0, "explain", local, strct, normal)
		for _, p := range []string{local, strct} {
			if l := ruLine(out, p); l != "skip "+p+` (allowSubstitutes = false (unsubstitutable = "skip"))` {
				t.Errorf("explain: %q", l)
			}
		}
		if l := ruLine(out, normal); !strings.HasPrefix(l, "push ") {
			t.Errorf("explain: %q", l)
		}
		v := ruExplain(t, e, local)
		if v[0].Targets[0].Check != "unsubstitutable" || v[0].Facts == nil || v[0].Facts.Substitutes != "denied" || !strings.HasSuffix(v[0].Facts.Deriver, "-local-1.0.drv") {
			t.Errorf("explain --json: %+v", v)
		}
		out, _ = ruRun(t, e, 0, "push", "--wait", local, strct, normal)
		if !strings.Contains(out, "queued 1 of 3 paths") {
			t.Errorf("push says:\n%s", out)
		}
		e2 := NewEnv(t, conf("skip"))
		out, _ = ruRun(t, e2, 0, "push", "--closure", "--wait", app)
		if !strings.Contains(out, "queued 1 of 2 paths") || !strings.Contains(out, "skipped local-1.0: allowSubstitutes = false") {
			t.Errorf("push --closure says:\n%s", out)
		}
		if got := CachePaths(t, filepath.Join(e.Dir, "cache")); !reflect.DeepEqual(scSet(got), scPaths(normal)) {
			t.Errorf("push: cache holds %v, want %s", scSet(got), normal)
		}
	})

	t.Run("drv-gone", func(t *testing.T) {
		t.Parallel()
		built := scBuild(t, fmt.Sprintf("[ (%s) ]", ruLocal(nixtest.Salt(), "local-gone-1.0", false)))
		p := built["local-gone-1.0"]
		drv, err := exec.Command("nix-store", "--query", "--deriver", p).Output()
		if err != nil {
			t.Fatal(err)
		}
		d := strings.TrimSpace(string(drv))
		// Nix keeps the derivers of valid outputs alive; this one is
		// ours alone.
		if out, err := exec.Command("nix-store", "--delete", "--ignore-liveness", d).CombinedOutput(); err != nil {
			t.Fatalf("deleting %s: %v\n%s", d, err, out)
		}
		e := NewEnv(t, conf("skip"))
		out, _ := ruRun(t, e, 0, "explain", p)
		want := "push " + p + " -> file://" + filepath.Join(e.Dir, "cache") + ` (allow "local-*"; its derivation ` + d + " is gone: counted as substitutable)"
		if strings.TrimSpace(out) != want {
			t.Errorf("explain:\n got %s\nwant %s", strings.TrimSpace(out), want)
		}
		ruRun(t, e, 0, "push", "--wait", p)
		if !CachePaths(t, filepath.Join(e.Dir, "cache"))[p] {
			t.Errorf("%s was not pushed", p)
		}
	})
}

// ruUpstream makes a binary cache with nix copy --to file:// holding
// paths, and serves it over HTTP on 127.0.0.1 for the test's lifetime.
func ruUpstream(t *testing.T, paths ...string) (dir, url string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "upstream")
	ruCopy(t, dir, paths...)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return dir, srv.URL
}

// ruCopy copies paths into the binary cache dir with nix copy.
func ruCopy(t *testing.T, dir string, paths ...string) {
	t.Helper()
	if len(paths) == 0 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	args := append([]string{"--extra-experimental-features", "nix-command", "copy", "--to", "file://" + dir}, paths...)
	if out, err := exec.Command("nix", args...).CombinedOutput(); err != nil {
		t.Fatalf("nix copy: %v\n%s", err, out)
	}
}

// ruStalled is an upstream that accepts connections and never answers.
func ruStalled(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// upstream through push, push --closure, explain and the hook, over HTTP
// and file://; an upstream that never answers costs a timeout and a
// warning, and the paths are pushed.
func TestRulesUpstream(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, fmt.Sprintf("let dep = %s; in [ dep (%s) (%s) ]",
		nixtest.Drv(s, "dep-1.0", nil), nixtest.Drv(s, "app-1.0", nil, "dep"), nixtest.Drv(s, "other-1.0", nil)))
	dep, app, other := built["dep-1.0"], built["app-1.0"], built["other-1.0"]
	updir, upurl := ruUpstream(t, dep)
	conf := func(up string) string {
		return `
store = "file://@DIR@/cache"
allow = ["*-1.0"]
upstream = ["` + up + `"]
upstream_timeout = "1s"
`
	}

	for _, up := range []string{upurl, "file://" + updir} {
		e := NewEnv(t, conf(up))
		out, _ := ruRun(t, e, 0, "explain", dep, other)
		if l := ruLine(out, dep); l != "skip "+dep+" (already in "+up+")" {
			t.Errorf("explain with %s: %q", up, l)
		}
		if l := ruLine(out, other); !strings.HasPrefix(l, "push ") {
			t.Errorf("explain with %s: %q", up, l)
		}
		v := ruExplain(t, e, dep)
		if v[0].Targets[0].Check != "upstream" || !v[0].Facts.Upstream[up] {
			t.Errorf("explain --json: %+v", v)
		}
		out, _ = ruRun(t, e, 0, "push", "--closure", "--wait", app)
		if !strings.Contains(out, "queued 1 of 2 paths") || !strings.Contains(out, "skipped dep-1.0: already in "+up) {
			t.Errorf("push --closure with %s says:\n%s", up, out)
		}
	}

	t.Run("stalled", func(t *testing.T) {
		t.Parallel()
		stalled := ruStalled(t)
		e := NewEnv(t, conf(stalled))
		start := time.Now()
		out, errOut := ruRun(t, e, 0, "push", "--wait", dep, other)
		if !strings.Contains(out, "queued 2 of 2 paths") || !strings.Contains(errOut, "warning: upstream "+stalled+" did not answer") {
			t.Errorf("push with a stalled upstream says:\n%s%s", out, errOut)
		}
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(dep, other); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
		if !strings.Contains(e.Log(), "upstream did not answer") {
			t.Errorf("worker log lacks the warning:\n%s", e.Log())
		}
		t.Logf("push --wait with a stalled upstream (1s timeout, asked by push and by the worker) took %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("hook", func(t *testing.T) {
		t.Parallel()
		// The hook only queues; the worker asks the upstream right
		// before pushing. The queue is locked while the build's output
		// is put in the upstream, so that no worker runs before.
		dir, url := ruUpstream(t) // empty for now
		e := NewEnv(t, conf(url))
		release := plLockQueue(t, e.Queue)
		s := nixtest.Salt()
		paths, log := e.Build(fmt.Sprintf("[ (%s) (%s) ]", nixtest.Drv(s, "inup-1.0", nil), nixtest.Drv(s, "notup-1.0", nil)))
		if !strings.Contains(log, "queued 1 of 1 paths") {
			t.Errorf("the hook did not queue both builds:\n%s", log)
		}
		byName := nixtest.ByName(paths)
		ruCopy(t, dir, byName["inup-1.0"])
		release()
		// A path an upstream has is no failure: wait exits 0.
		e.Wait(eventually.Left(t))
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(byName["notup-1.0"]); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
		if r := ruDropped(t, e, byName["inup-1.0"]); len(r) != 0 {
			t.Errorf("dropped: %v, want nothing", r)
		}
		if l := ruLine(e.Log(), byName["inup-1.0"]); !strings.Contains(l, "not pushed") || !strings.Contains(l, "already in "+url) {
			t.Errorf("worker log: %q", l)
		}
		hist, _ := os.ReadFile(filepath.Join(e.Queue, "history.jsonl"))
		if l := ruLine(string(hist), byName["inup-1.0"]); !strings.Contains(l, `"outcome":"upstream"`) || !strings.Contains(l, "already in "+url) {
			t.Errorf("history: %q", l)
		}
	})
}

// ruKeys makes a signing key pair with nix-store
// --generate-binary-cache-key, the secret key private as root needs it.
func ruKeys(t *testing.T, dir, name string) (secret, public string) {
	t.Helper()
	secret, public = filepath.Join(dir, name+".sec"), filepath.Join(dir, name+".pub")
	if out, err := exec.Command("nix-store", "--generate-binary-cache-key", name, secret, public).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return secret, public
}

// ruVerify copies path from the binary cache into a fresh store with
// require-sigs and only pubFile's key trusted; it returns nix's error.
func ruVerify(t *testing.T, cache, path, pubFile string) error {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command", "copy",
		"--option", "substituters", "", "--option", "require-sigs", "true",
		"--option", "trusted-public-keys", strings.TrimSpace(string(pub)),
		"--from", "file://"+cache, "--to", dst, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Signing: a store target with secret_key_file, through the hook; a Cachix
// target with cachix.signing_key_file, through push (the stand-in signs
// with CACHIX_SIGNING_KEY). Each cache verifies with the right public key
// and is rejected with another.
func TestRulesSigning(t *testing.T) {
	t.Parallel()
	keys := t.TempDir()
	sec, pub := ruKeys(t, keys, "cfh-test-1")
	_, otherPub := ruKeys(t, keys, "cfh-other-1")
	keyText, err := os.ReadFile(sec)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(keyText))
	check := func(t *testing.T, cache, path string) {
		t.Helper()
		ni, err := os.ReadFile(filepath.Join(cache, filepath.Base(path)[:32]+".narinfo"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(ni), "\nSig: cfh-test-1:") {
			t.Errorf("narinfo has no signature by the key:\n%s", ni)
		}
		if err := ruVerify(t, cache, path, pub); err != nil {
			t.Errorf("copy with the right key trusted failed: %v", err)
		}
		if err := ruVerify(t, cache, path, otherPub); err == nil || !strings.Contains(err.Error(), "lacks a valid signature") {
			t.Errorf("copy with another key trusted: %v, want a missing signature", err)
		}
	}

	t.Run("store", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["signed-*"]
secret_key_file = "`+sec+`"
`)
		paths, _ := e.Build(fmt.Sprintf("[ (%s) ]", nixtest.Drv(nixtest.Salt(), "signed-1.0", nil)))
		e.Wait(eventually.Left(t))
		check(t, filepath.Join(e.Dir, "cache"), paths[0])
	})

	t.Run("cachix", func(t *testing.T) {
		t.Parallel()
		built := scBuild(t, fmt.Sprintf("[ (%s) ]", nixtest.Drv(nixtest.Salt(), "signed-cx-1.0", nil)))
		p := built["signed-cx-1.0"]
		e := NewEnv(t, `
cache = "selfsigned"
allow = ["signed-*"]
[cachix]
bin = "@CACHIX@"
signing_key_file = "`+sec+`"
`)
		plSetVar(e, "CACHIX_AUTH_TOKEN", "") // the signing key alone authenticates
		ruRun(t, e, 0, "push", "--wait", p)
		check(t, filepath.Join(e.Standin, "selfsigned"), p)
		sum := sha256.Sum256([]byte(secret))
		invs := e.Invocations()
		raw, _ := os.ReadFile(filepath.Join(e.Standin, "invocations.jsonl"))
		var rec struct {
			Auth string `json:"auth"`
			Key  string `json:"signing_key_sha256"`
		}
		if len(invs) != 1 || json.Unmarshal([]byte(strings.Split(string(raw), "\n")[0]), &rec) != nil || rec.Auth != "signing-key" || rec.Key != hex.EncodeToString(sum[:]) {
			t.Errorf("stand-in saw auth %q, key sha256 %q; want the signing key", rec.Auth, rec.Key)
		}
		b64 := secret[strings.IndexByte(secret, ':')+1:]
		for _, inv := range invs {
			if strings.Contains(strings.Join(inv.Argv, " "), b64) {
				t.Errorf("the key is in argv: %v", inv.Argv)
			}
		}
		filepath.Walk(e.Dir, func(path string, fi os.FileInfo, err error) error {
			if err != nil || !fi.Mode().IsRegular() || path == sec {
				return nil
			}
			if b, _ := os.ReadFile(path); strings.Contains(string(b), b64) {
				t.Errorf("the key is written in %s", path)
			}
			return nil
		})
	})
}
