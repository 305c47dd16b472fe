package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// cpath is a store path with its own hash (c: a nix-base32 character).
func cpath(c byte, name string) storepath.Path {
	return storepath.New("/nix/store", strings.Repeat(string(c), storepath.HashLen), name)
}

// closureConf loads a config with a target per closure rule, both
// denying "secret-*" with a max_nar_size of 1 MiB.
func closureConf(t *testing.T) *config.Config {
	t.Helper()
	return load(t, `
max_nar_size = "1MiB"
[[target]]
store = "file:///srv/s"
name = "skipper"
allow = ["*"]
deny = ["secret-*"]
closure_deny = "skip"
[[target]]
store = "file:///srv/p"
name = "pusher"
allow = ["*"]
deny = ["secret-*"]
closure_deny = "push"
[queue]
dir = "/tmp/q"
`)
}

// The closure verdict: "skip" leaves out a selected path whose closure
// holds a denied path or one larger than max_nar_size, naming it and the
// rule; "push" keeps it and notes what goes up with it; a denied path of
// the set in a pushed path's closure is "denied ..., but uploaded", never
// "skip".
func TestDecideAllClosure(t *testing.T) {
	c := closureConf(t)
	app, secret, big, lib, other := cpath('a', "app-1.0"), cpath('b', "secret-key-1"), cpath('c', "big-1.0"), cpath('d', "lib-1.0"), cpath('f', "other-1.0")
	sizes := map[string]int64{app.String(): 100, secret.String(): 100, big.String(): 2 << 20, lib.String(): 100}
	narSize := func(s string) (int64, bool) { n, ok := sizes[s]; return n, ok }
	closures := map[string]*Closure{
		// app -> lib -> secret; app -> big
		app.String():    {Paths: []string{app.String(), lib.String(), big.String(), secret.String()}, NarSize: narSize},
		lib.String():    {Paths: []string{lib.String(), secret.String()}, NarSize: narSize},
		secret.String(): {Paths: []string{secret.String()}, NarSize: narSize},
		big.String():    {Paths: []string{big.String()}, NarSize: narSize},
		// other -> big only
		other.String(): {Paths: []string{other.String(), big.String()}, NarSize: narSize},
	}
	facts := func(s string) *Facts {
		if n, ok := sizes[s]; ok {
			return &Facts{NarSize: n}
		}
		return nil
	}
	vs := DecideAll(c, []storepath.Path{app, secret, big, other}, facts, func(s string) *Closure { return closures[s] })
	byPath := map[string]Verdict{}
	for _, v := range vs {
		byPath[v.Path.String()] = v
	}

	// app: the skipper leaves it out for the denied path (found before
	// the large one, as the worker looks); the pusher pushes it and says
	// the secret goes up with it.
	v := byPath[app.String()]
	if !slices.Equal(v.Push, []string{"pusher"}) {
		t.Errorf("app pushed to %v, want [pusher]", v.Push)
	}
	sk, pu := v.Targets[0], v.Targets[1]
	if sk.Selected || sk.Check != CheckClosure || sk.Dependency != secret.String() || sk.Pattern != "secret-*" || sk.Rule != closureSkip(secret.String(), deniedBy("secret-*")) {
		t.Errorf("skipper on app: %+v", sk)
	}
	if !pu.Selected || pu.Dependency != secret.String() || !slices.Contains(pu.Notes, closurePush(secret.String(), deniedBy("secret-*"))) {
		t.Errorf("pusher on app: %+v", pu)
	}
	want := `push ` + app.String() + ` -> pusher (allow "*"; also uploads ` + secret.String() + `, denied by "secret-*", inside its closure (closure_deny = "push"); not -> skipper: closure_deny = "skip": its closure contains ` + secret.String() + `, denied by "secret-*")`
	if v.Line() != want {
		t.Errorf("app:\n got %s\nwant %s", v.Line(), want)
	}

	// The secret: denied by both, uploaded by the pusher inside app's
	// closure.
	v = byPath[secret.String()]
	want = `denied ` + secret.String() + ` (deny "secret-*"), but uploaded -> pusher inside the closure of ` + app.String() + ` (closure_deny = "push")`
	if v.Line() != want || v.Targets[1].InsideClosureOf != app.String() || v.Targets[0].InsideClosureOf != "" {
		t.Errorf("secret:\n got %s\nwant %s\n%+v", v.Line(), want, v.Targets)
	}

	// other: its closure holds only the large path.
	v = byPath[other.String()]
	sizeRule := "larger than max_nar_size (NAR 2.0 MiB, limit 1.0 MiB)"
	if sk := v.Targets[0]; sk.Selected || sk.Check != CheckClosure || sk.Rule != closureSkip(big.String(), sizeRule) || sk.Dependency != big.String() {
		t.Errorf("skipper on other: %+v", sk)
	}
	if pu := v.Targets[1]; !pu.Selected || !slices.Contains(pu.Notes, closurePush(big.String(), sizeRule)) {
		t.Errorf("pusher on other: %+v", pu)
	}
	// The large path: left out by its size, uploaded inside app's
	// closure (the first pushed path whose closure holds it).
	v = byPath[big.String()]
	want = `denied ` + big.String() + ` (` + sizeRule + `), but uploaded -> pusher inside the closure of ` + app.String() + ` (closure_deny = "push")`
	if v.Line() != want {
		t.Errorf("big:\n got %s\nwant %s", v.Line(), want)
	}
	for _, v := range vs {
		if l := v.Line(); strings.HasPrefix(l, "skip ") {
			t.Errorf("a path that goes up says skip: %s", l)
		}
	}

	// The same reasons as the worker gives (worker/rules.go,
	// worker/facts.go): the text of a drop.
	if got := closureSkip(big.String(), sizeRule); got != `closure_deny = "skip": its closure contains `+big.String()+`, `+sizeRule {
		t.Errorf("size reason %q", got)
	}
	if got := closureSkip(secret.String(), deniedBy("secret-*")); got != `closure_deny = "skip": its closure contains `+secret.String()+`, denied by "secret-*"` {
		t.Errorf("deny reason %q", got)
	}
}

// Without closures (a path not in the store, or none asked), the verdict
// is the path's own; with closure_deny = "skip" alone a skipped path's
// line names the dependency and the rule.
func TestDecideAllNoClosure(t *testing.T) {
	c := closureConf(t)
	app, secret := cpath('a', "app-1.0"), cpath('b', "secret-key-1")
	vs := DecideAll(c, []storepath.Path{app, secret}, nil, nil)
	if vs[0].Line() != `push `+app.String()+` -> skipper, pusher (allow "*")` || vs[1].Line() != `skip `+secret.String()+` (deny "secret-*")` {
		t.Errorf("lines:\n%s\n%s", vs[0].Line(), vs[1].Line())
	}
	vs = DecideAll(c, []storepath.Path{app, secret}, nil, func(string) *Closure { return nil })
	if vs[0].Line() != `push `+app.String()+` -> skipper, pusher (allow "*")` {
		t.Errorf("unknown closure: %s", vs[0].Line())
	}

	one := load(t, `
cache = "mycache"
allow = ["*"]
deny = ["secret-*"]
[queue]
dir = "/tmp/q"
`)
	cl := &Closure{Paths: []string{app.String(), secret.String()}}
	vs = DecideAll(one, []storepath.Path{app, secret}, nil, func(s string) *Closure {
		if s == app.String() {
			return cl
		}
		return nil
	})
	want := `skip ` + app.String() + ` (closure_deny = "skip": its closure contains ` + secret.String() + `, denied by "secret-*")`
	if vs[0].Line() != want || len(vs[0].Push) != 0 {
		t.Errorf("default closure_deny:\n got %s\nwant %s", vs[0].Line(), want)
	}
	// The secret goes up nowhere: its line stays "skip".
	if l := vs[1].Line(); l != `skip `+secret.String()+` (deny "secret-*")` {
		t.Errorf("secret: %s", l)
	}
}

// A path no allow rule matches, or one upstream leaves out, is not the
// closure rule's subject: no "uploaded inside" for it (see the README).
func TestDecideAllOnlyDenied(t *testing.T) {
	one := load(t, `
cache = "mycache"
allow = ["app-*"]
deny = ["secret-*"]
closure_deny = "push"
[queue]
dir = "/tmp/q"
`)
	app, glibc := cpath('a', "app-1.0"), cpath('g', "glibc-2.39")
	vs := DecideAll(one, []storepath.Path{app, glibc}, nil, func(s string) *Closure {
		if s == app.String() {
			return &Closure{Paths: []string{app.String(), glibc.String()}}
		}
		return nil
	})
	if l := vs[1].Line(); l != `skip `+glibc.String()+` (no allow rule matches)` {
		t.Errorf("glibc: %s", l)
	}
	if l := vs[0].Line(); l != `push `+app.String()+` -> mycache (allow "app-*")` {
		t.Errorf("app: %s", l)
	}
}

// Many paths are decided on several goroutines: the verdicts are the ones
// one goroutine gives, closure marks included (run with -race to see the
// callbacks only read).
func TestDecideAllManyPaths(t *testing.T) {
	c := closureConf(t)
	const n = 5000
	paths := make([]storepath.Path, n)
	facts := map[string]*Facts{}
	for i := range paths {
		h := []byte(strings.Repeat("0", storepath.HashLen))
		for j, k := 0, i; j < 4; j, k = j+1, k/32 {
			h[j] = storepath.Base32[k%32]
		}
		name := fmt.Sprintf("p-%d", i)
		if i%7 == 0 {
			name = fmt.Sprintf("secret-%d", i)
		}
		paths[i] = storepath.New("/nix/store", string(h), name)
		facts[paths[i].String()] = &Facts{NarSize: int64(i%3) << 20}
	}
	// Each path's closure: itself and the next three.
	closures := map[string]*Closure{}
	for i, p := range paths {
		cl := &Closure{NarSize: func(s string) (int64, bool) { return facts[s].NarSize, true }}
		for j := i; j < min(i+4, n); j++ {
			cl.Paths = append(cl.Paths, paths[j].String())
		}
		closures[p.String()] = cl
	}
	factsOf := func(s string) *Facts { return facts[s] }
	closureOf := func(s string) *Closure { return closures[s] }
	want := decideAll(c, paths, factsOf, closureOf, 1)
	inside := 0
	for _, v := range want {
		if strings.Contains(v.Line(), "inside") {
			inside++
		}
	}
	if inside == 0 {
		t.Fatal("no verdict marks a path going up inside another's closure: the test tests less than it says")
	}
	for _, workers := range []int{2, 3, 8} {
		got := decideAll(c, paths, factsOf, closureOf, workers)
		for i := range want {
			if got[i].Line() != want[i].Line() {
				t.Fatalf("%d goroutines, path %d: %s\none: %s", workers, i, got[i].Line(), want[i].Line())
			}
		}
	}
}

// A panic while deciding on several goroutines reaches the caller, as on
// one: the hook recovers it and exits 0; left in a goroutine it ended
// the process, exit 2, and Nix started no more builds.
func TestDecideAllPanicReachesTheCaller(t *testing.T) {
	c := closureConf(t)
	paths := make([]storepath.Path, 64)
	for i := range paths {
		paths[i] = cpath('a', fmt.Sprintf("p-%d", i))
	}
	facts := func(s string) *Facts {
		if s == paths[40].String() {
			panic("boom")
		}
		return nil
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want the panic of the facts", r)
		}
	}()
	decideAll(c, paths, facts, nil, 4)
	t.Error("decideAll returned")
}
