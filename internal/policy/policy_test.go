package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// load loads a config file of that text, with no CACHIX_FILTER_HOOK_*
// variable in the way.
func load(t *testing.T, text string) *config.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix+"_") {
			t.Setenv(k, "")
		}
	}
	file := filepath.Join(t.TempDir(), "hook.conf")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func path(name string) storepath.Path {
	return storepath.New("/nix/store", "0123456789abcdfghijklmnpqrsvwxyz", name)
}

func TestDecideFacts(t *testing.T) {
	c := load(t, `
store = "file:///srv/a"
name = "main"
allow = ["*"]
deny = ["*-doc"]
max_nar_size = "1GiB"
upstream = ["https://up.example"]
[queue]
dir = "/tmp/q"
`)
	p := path("hello-2.12.1")
	for _, tc := range []struct {
		why   string
		p     string
		f     *Facts
		check string
		line  string
	}{
		{"no facts", "hello-2.12.1", nil, "", `push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> main (allow "*")`},
		{"too large", "hello-2.12.1", &Facts{NarSize: 1395864371}, "max_nar_size", `skip /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 (larger than max_nar_size (NAR 1.3 GiB, limit 1.0 GiB))`},
		{"exactly the limit", "hello-2.12.1", &Facts{NarSize: 1 << 30}, "", `push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> main (allow "*")`},
		{"deny wins over size", "hello-doc", &Facts{NarSize: 1 << 40}, "", `skip /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-doc (deny "*-doc")`},
		{"unsubstitutable", "hello-2.12.1", &Facts{Substitutes: SubstDenied}, "unsubstitutable", `skip /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 (allowSubstitutes = false (unsubstitutable = "skip"))`},
		{"drv gone", "hello-2.12.1", &Facts{Substitutes: SubstNoDrv, Deriver: "/nix/store/x-hello.drv"}, "", `push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> main (allow "*"; its derivation /nix/store/x-hello.drv is gone: counted as substitutable)`},
		{"upstream has it", "hello-2.12.1", &Facts{Upstream: map[string]bool{"https://up.example": true}}, "upstream", `skip /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 (already in https://up.example)`},
		{"upstream has it not", "hello-2.12.1", &Facts{Upstream: map[string]bool{"https://up.example": false}}, "", `push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> main (allow "*")`},
		{"upstream down", "hello-2.12.1", &Facts{Unreachable: map[string]string{"https://up.example": "timeout"}}, "", `push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> main (allow "*"; upstream https://up.example did not answer (timeout): pushed)`},
	} {
		t.Run(tc.why, func(t *testing.T) {
			q := p
			q.Name = tc.p
			v := Decide(c, q, tc.f)
			if v.Line() != tc.line {
				t.Errorf("line:\n got %s\nwant %s", v.Line(), tc.line)
			}
			if v.Targets[0].Check != tc.check {
				t.Errorf("check = %q, want %q", v.Targets[0].Check, tc.check)
			}
		})
	}
}

// The facts a configuration's rules read, from the rule table: nobody asks
// Nix or the network for the others.
func TestNeedsOf(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want Needs
	}{
		{"cache = \"c\"\nallow = [\"*\"]\nunsubstitutable = \"push\"\n", Needs{}},
		{"cache = \"c\"\nallow = [\"*\"]\n", Needs{Subst: true}},
		{"cache = \"c\"\nallow = [\"*\"]\nunsubstitutable = \"push\"\nmax_nar_size = \"1MiB\"\n", Needs{Size: true}},
		{"cache = \"c\"\nallow = [\"*\"]\nunsubstitutable = \"push\"\nupstream = [\"https://up.example\"]\n", Needs{Upstream: true}},
	} {
		if got := NeedsOf(load(t, tc.conf+"[queue]\ndir = \"/tmp/q\"\n")); got != tc.want || got.Any() != (tc.want != Needs{}) {
			t.Errorf("%q: needs %+v, want %+v", tc.conf, got, tc.want)
		}
	}
}

// The worker's reason for a drop: a path the patterns no longer select says
// so; the other rules give their own reason.
func TestDropReason(t *testing.T) {
	c := load(t, "cache = \"c\"\nallow = [\"*\"]\ndeny = [\"*-doc\"]\nmax_nar_size = \"1KiB\"\n[queue]\ndir = \"/tmp/q\"\n")
	tg := c.Targets[0]
	if got := DecideTarget(tg, path("hello-doc"), nil, nil).DropReason(); got != `no longer selected: deny "*-doc"` {
		t.Errorf("by name: %q", got)
	}
	if got := DecideTarget(tg, path("hello"), &Facts{NarSize: 4096}, nil).DropReason(); got != "larger than max_nar_size (NAR 4.0 KiB, limit 1.0 KiB)" {
		t.Errorf("by size: %q", got)
	}
}

// The order of the steps, the same for every caller: a path an upstream
// has is "already in" it even when its closure holds a denied path (the
// worker used to drop it by the closure rule, while explain said
// upstream).
func TestStepsInOrder(t *testing.T) {
	c := load(t, "cache = \"c\"\nallow = [\"*\"]\ndeny = [\"*-doc\"]\nupstream = [\"https://up.example\"]\nunsubstitutable = \"push\"\n[queue]\ndir = \"/tmp/q\"\n")
	app, doc := cpath('a', "app-1"), cpath('b', "app-1-doc")
	f := &Facts{Upstream: map[string]bool{"https://up.example": true}}
	cl := &Closure{Paths: []string{app.String(), doc.String()}}
	if td := DecideTarget(c.Targets[0], app, f, cl); td.Selected || td.Check != "upstream" {
		t.Errorf("upstream and a denied dependency: %+v, want upstream", td)
	}
	if td := DecideTarget(c.Targets[0], app, nil, cl); td.Selected || td.Check != CheckClosure || td.Dependency != doc.String() {
		t.Errorf("a denied dependency: %+v, want closure_deny", td)
	}
	if td := DecideTarget(c.Targets[0], doc, f, nil); td.Selected || td.Check != "" || td.Rule != `deny "*-doc"` {
		t.Errorf("denied by name: %+v, want the pattern before any fact", td)
	}
}
