package test

// The closure verdict in every message (issue 9 item 4, issue 13's
// max_nar_size): explain, push --dry-run (--json too) and the hook's line
// say what the worker will do with a selected path whose closure holds a
// denied path or one larger than max_nar_size, under both closure rules,
// with real Nix builds. Helpers are prefixed with cv.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// cvExplainJSON is the part of explain --json these tests read.
type cvExplainJSON []struct {
	Path    string   `json:"path"`
	Push    []string `json:"push"`
	Targets []struct {
		Target          string   `json:"target"`
		Selected        bool     `json:"selected"`
		Rule            string   `json:"rule"`
		Pattern         string   `json:"pattern"`
		Check           string   `json:"check"`
		Notes           []string `json:"notes"`
		Dependency      string   `json:"dependency"`
		InsideClosureOf string   `json:"inside_closure_of"`
	} `json:"targets"`
}

// cvLines maps each path to the line that starts with a verdict on it.
func cvLines(t *testing.T, out string, paths ...string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	got := map[string]string{}
	for _, p := range paths {
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 2 && f[1] == p {
				got[p] = l
			}
		}
		if got[p] == "" {
			t.Errorf("no line on %s:\n%s", p, out)
		}
	}
	return got
}

// A selected app depending on a denied secret, a selected tool depending
// on a path larger than max_nar_size, and a clean path: explain and push
// --dry-run say, under "skip", that app and tool will not be pushed, naming
// the dependency and the rule exactly as the worker's drop does; under
// "push", that they go up with it, and that the secret and the large path
// are "denied ..., but uploaded inside the closure of" app and tool.
func TestClosureVerdictExplainAndDryRun(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, fmt.Sprintf("let secret = %s; big = %s; in [ (%s) (%s) (%s) ]",
		nixtest.Drv(s, "secret-key-1", nil), ruBig(s, "big-1.0"),
		nixtest.Drv(s, "app-1.0", nil, "secret"), nixtest.Drv(s, "tool-1.0", nil, "big"), nixtest.Drv(s, "clean-1.0", nil)))
	secret, big, app, tool, clean := built["secret-key-1"], built["big-1.0"], built["app-1.0"], built["tool-1.0"], built["clean-1.0"]
	all := []string{app, secret, tool, big, clean}
	conf := func(mode string) string {
		return `
store = "file://@DIR@/cache"
name = "main"
allow = ["*"]
deny = ["secret-*"]
max_nar_size = "16KiB"
closure_deny = "` + mode + `"
`
	}
	const sizeRule = `larger than max_nar_size (NAR 64.`

	t.Run("skip", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("skip"))
		out, errOut := ruRun(t, e, 0, append([]string{"explain"}, all...)...)
		if errOut != "" {
			t.Errorf("explain warns:\n%s", errOut)
		}
		l := cvLines(t, out, all...)
		if want := `skip ` + app + ` (closure_deny = "skip": its closure contains ` + secret + `, denied by "secret-*")`; l[app] != want {
			t.Errorf("explain of app:\n got %s\nwant %s", l[app], want)
		}
		if want := `skip ` + tool + ` (closure_deny = "skip": its closure contains ` + big + `, ` + sizeRule; !strings.HasPrefix(l[tool], want) || !strings.HasSuffix(l[tool], ruSizeLimit+"))") {
			t.Errorf("explain of tool:\n got %s\nwant %s...%s))", l[tool], want, ruSizeLimit)
		}
		if want := `skip ` + secret + ` (deny "secret-*")`; l[secret] != want {
			t.Errorf("explain of the secret:\n got %s\nwant %s", l[secret], want)
		}
		if !strings.HasPrefix(l[big], "skip "+big+" ("+sizeRule) {
			t.Errorf("explain of the large path: %s", l[big])
		}
		if want := `push ` + clean + ` -> main (allow "*")`; l[clean] != want {
			t.Errorf("explain of the clean path:\n got %s\nwant %s", l[clean], want)
		}
		// push --dry-run says the same.
		dry, _ := ruRun(t, e, 0, append([]string{"push", "--dry-run"}, all...)...)
		if dry != out {
			t.Errorf("push --dry-run printed\n%s\nexplain printed\n%s", dry, out)
		}
		// --json: the check, the dependency and the pattern.
		v := cvExplain(t, e, app, tool)
		if len(v) != 2 || len(v[0].Push) != 0 || v[0].Targets[0].Selected || v[0].Targets[0].Check != "closure_deny" || v[0].Targets[0].Dependency != secret || v[0].Targets[0].Pattern != "secret-*" {
			t.Errorf("explain --json of app: %+v", v)
		}
		if len(v) == 2 && (len(v[1].Push) != 0 || v[1].Targets[0].Check != "closure_deny" || v[1].Targets[0].Dependency != big) {
			t.Errorf("explain --json of tool: %+v", v[1])
		}
		// push --dry-run --closure of app: the closure's lines.
		dry, _ = ruRun(t, e, 0, "push", "--dry-run", "--closure", app)
		l = cvLines(t, dry, app, secret)
		if !strings.HasPrefix(l[app], "skip "+app+` (closure_deny = "skip": its closure contains `+secret) || l[secret] != `skip `+secret+` (deny "secret-*")` {
			t.Errorf("push --dry-run --closure:\n%s", dry)
		}

		// What push does: what it said, with the very reasons; nothing
		// queued for the worker to drop, and no failure (issue 18).
		pushed, _ := ruRun(t, e, 0, "push", "--wait", "--timeout", eventually.Left(t).String(), app, tool)
		jv := cvExplain(t, e, app, tool)
		for i, p := range []string{app, tool} {
			if want := filepath.Base(p)[33:] + ": " + jv[i].Targets[0].Rule; !strings.Contains(pushed, want) {
				t.Errorf("push says\n%s\nwithout what explain says of %s:\n  %s", pushed, p, want)
			}
			if r := ruDropped(t, e, p); len(r) != 0 {
				t.Errorf("the worker dropped %s (%v): push queued it", p, r)
			}
		}
		if !strings.Contains(pushed, "queued 0 of 2 paths") {
			t.Errorf("push says:\n%s", pushed)
		}
		if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) != 0 {
			t.Errorf("cache holds %v, want nothing", scSet(got))
		}
	})

	t.Run("push", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("push"))
		out, _ := ruRun(t, e, 0, append([]string{"explain"}, all...)...)
		l := cvLines(t, out, all...)
		if want := `push ` + app + ` -> main (allow "*"; also uploads ` + secret + `, denied by "secret-*", inside its closure (closure_deny = "push"))`; l[app] != want {
			t.Errorf("explain of app:\n got %s\nwant %s", l[app], want)
		}
		if want := `push ` + tool + ` -> main (allow "*"; also uploads ` + big + `, ` + sizeRule; !strings.HasPrefix(l[tool], want) || !strings.HasSuffix(l[tool], `, inside its closure (closure_deny = "push"))`) {
			t.Errorf("explain of tool:\n got %s\nwant %s...", l[tool], want)
		}
		if want := `denied ` + secret + ` (deny "secret-*"), but uploaded -> main inside the closure of ` + app + ` (closure_deny = "push")`; l[secret] != want {
			t.Errorf("explain of the secret:\n got %s\nwant %s", l[secret], want)
		}
		if want := `denied ` + big + ` (` + sizeRule; !strings.HasPrefix(l[big], want) || !strings.HasSuffix(l[big], `, but uploaded -> main inside the closure of `+tool+` (closure_deny = "push")`) {
			t.Errorf("explain of the large path:\n got %s\nwant %s...", l[big], want)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.HasPrefix(line, "skip ") {
				t.Errorf("every path here goes up, yet: %s", line)
			}
		}
		dry, _ := ruRun(t, e, 0, append([]string{"push", "--dry-run"}, all...)...)
		if dry != out {
			t.Errorf("push --dry-run printed\n%s\nexplain printed\n%s", dry, out)
		}
		v := cvExplain(t, e, app, secret)
		if len(v) != 2 || !reflect.DeepEqual(v[0].Push, []string{"main"}) || v[0].Targets[0].Dependency != secret || len(v[0].Targets[0].Notes) != 1 || !strings.Contains(v[0].Targets[0].Notes[0], secret) {
			t.Errorf("explain --json of app: %+v", v)
		}
		if len(v) == 2 && (v[1].Targets[0].Selected || v[1].Targets[0].InsideClosureOf != app) {
			t.Errorf("explain --json of the secret: %+v", v[1])
		}
		// push --dry-run --closure of app: the secret goes up inside it.
		dry, _ = ruRun(t, e, 0, "push", "--dry-run", "--closure", app)
		l = cvLines(t, dry, app, secret)
		if !strings.HasPrefix(l[app], "push "+app) || !strings.HasPrefix(l[secret], "denied "+secret+` (deny "secret-*"), but uploaded -> main inside the closure of `+app) {
			t.Errorf("push --dry-run --closure:\n%s", dry)
		}
		// And so it does.
		ruRun(t, e, 0, "push", "--wait", "--timeout", eventually.Left(t).String(), app, tool)
		if got, want := scSet(CachePaths(t, filepath.Join(e.Dir, "cache"))), scPaths(app, secret, tool, big); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
	})
}

func cvExplain(t *testing.T, e *Env, paths ...string) cvExplainJSON {
	t.Helper()
	out, _ := ruRun(t, e, 0, append([]string{"explain", "--json"}, paths...)...)
	var v cvExplainJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	return v
}

// The hook's line for a build whose out refers to its denied secret
// output: under "push" the secret is uploaded inside out's closure (the
// line says so, never "skipped"), under "skip" the line says the worker
// will drop out, and it does. A build whose out does not refer to it keeps
// "skipped".
func TestClosureVerdictHookLine(t *testing.T) {
	t.Parallel()
	// out refers to the secret output through its path in $out.
	refers := func(salt, name string) string {
		return fmt.Sprintf(`derivation { name = %q; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ "out" "secret" ]; args = [ "-c" "echo %s > $secret; echo $secret > $out" ]; }`, name, salt)
	}
	conf := func(mode string) string {
		return `
store = "file://@DIR@/cache"
name = "main"
allow = ["app-*", "other-*"]
deny = ["*-secret"]
closure_deny = "` + mode + `"
`
	}
	for _, mode := range []string{"push", "skip"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := NewEnv(t, conf(mode))
			s := nixtest.Salt()
			paths, log := e.Build(fmt.Sprintf("[ (%s) (%s) ]", refers(s, "app-1.0"), nixtest.Drv(s, "other-1.0", []string{"out", "secret"})))
			byName := nixtest.ByName(paths)
			app, secret := byName["app-1.0"], byName["app-1.0-secret"]
			var appLine, otherLine string
			for _, l := range strings.Split(log, "\n") {
				if !strings.Contains(l, "cachix-filter-hook: queued") {
					continue
				}
				switch {
				case strings.Contains(l, "app-1.0-secret"):
					appLine = l
				case strings.Contains(l, "other-1.0-secret"):
					otherLine = l
				}
			}
			if want := `queued 1 of 2 paths for main (skipped other-1.0-secret: deny "*-secret")`; !strings.HasSuffix(otherLine, want) {
				t.Errorf("the hook's line on other:\n got %s\nwant ...%s", otherLine, want)
			}
			switch mode {
			case "push":
				if want := `queued 1 of 2 paths for main (not queued app-1.0-secret: deny "*-secret", but uploaded -> main inside the closure of app-1.0 (closure_deny = "push"))`; !strings.HasSuffix(appLine, want) {
					t.Errorf("the hook's line on app:\n got %s\nwant ...%s", appLine, want)
				}
				e.Wait(eventually.Left(t))
				if c := CachePaths(t, filepath.Join(e.Dir, "cache")); !c[app] || !c[secret] {
					t.Errorf("cache holds %v, want %s inside %s's closure", scSet(c), secret, app)
				}
			case "skip":
				if want := `queued 1 of 2 paths for main (the worker will drop app-1.0 -> main: ` + `closure_deny = "skip": its closure contains ` + secret + `, denied by "*-secret"; skipped app-1.0-secret: deny "*-secret")`; !strings.HasSuffix(appLine, want) {
					t.Errorf("the hook's line on app:\n got %s\nwant ...%s", appLine, want)
				}
				e.WaitDropped(60*time.Second, false, app)
				if got, want := ruDropped(t, e, app)["main"], `closure_deny = "skip": its closure contains `+secret+`, denied by "*-secret"`; got != want {
					t.Errorf("the worker dropped %s with %q, want %q", app, got, want)
				}
				if c := CachePaths(t, filepath.Join(e.Dir, "cache")); c[app] || c[secret] {
					t.Errorf("cache holds %v", scSet(c))
				}
			}
		})
	}
}
