package pathfacts

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// storePath makes a store path named name, with a hash of its own.
func storePath(i int, name string) string {
	h := []byte(fmt.Sprintf("%032d", i))
	for j := range h {
		h[j] = storepath.Base32[(int(h[j])+j)%len(storepath.Base32)]
	}
	return storepath.StoreDir() + "/" + string(h) + "-" + name
}

func denyConfig(t *testing.T, deny ...string) *config.Config {
	t.Helper()
	rules, err := filter.Compile([]string{"*"}, deny)
	if err != nil {
		t.Fatal(err)
	}
	return &config.Config{Targets: []*config.Target{{Name: "main", Store: "file:///c", Allow: []string{"*"}, Deny: deny, ClosureDeny: config.ClosureSkip, Rules: rules}}}
}

// gatherer returns a Gatherer whose infos are loaded, as after Closure.
func gatherer(graph map[string][]string) *Gatherer {
	g := &Gatherer{infos: map[string]nixstore.PathInfo{}, closed: map[string]bool{}, drvs: map[string]string{}}
	for p, refs := range graph {
		g.infos[p] = nixstore.PathInfo{Path: p, Valid: true, References: refs, NarSize: 100}
		g.closed[p] = true
	}
	return g
}

// A root whose closure holds a denied path gets its closure whole, root
// first, breadth-first; one whose closure holds none, itself alone.
func TestClosuresOnlyWhereTheRuleSpeaks(t *testing.T) {
	app, lib, secret, tool, clean := storePath(1, "app-1.0"), storePath(2, "lib-1.0"), storePath(3, "secret-1"), storePath(4, "tool-1.0"), storePath(5, "clean-1.0")
	g := gatherer(map[string][]string{
		app:    {app, lib, tool},
		lib:    {secret},
		secret: {},
		tool:   {clean},
		clean:  {clean},
	})
	cfg := denyConfig(t, "secret-*")
	roots := []string{app, lib, secret, tool, clean}
	out, err := g.RuleClosures(context.Background(), cfg, roots)
	if err != nil {
		t.Fatal(err)
	}
	for root, want := range map[string][]string{
		app:    {app, lib, tool, secret, clean},
		lib:    {lib, secret},
		secret: {secret},
		tool:   {tool},
		clean:  {clean},
	} {
		if got := out[root]; got == nil || !slices.Equal(got.Paths, want) {
			t.Errorf("closure of %s = %v, want %v", root, got, want)
		}
	}
}

// A deep graph (a chain of 20,000 paths, each referring to the next) in
// which nothing is denied costs one walk: listing every closure whole
// allocated the sum of their sizes, 200 million entries here.
func TestClosuresDeepGraphLinear(t *testing.T) {
	const n = 20000
	graph := map[string][]string{}
	paths := make([]string, n)
	for i := range n {
		paths[i] = storePath(i, fmt.Sprintf("p%d", i))
	}
	for i := range n {
		var refs []string
		if i+1 < n {
			refs = []string{paths[i+1]}
		}
		graph[paths[i]] = refs
	}
	g := gatherer(graph)
	cfg := denyConfig(t, "secret-*")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := g.RuleClosures(context.Background(), cfg, paths)
	runtime.ReadMemStats(&after)
	if err != nil || len(out) != n {
		t.Fatalf("%d closures, %v", len(out), err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB for %d closures", alloc>>20, n)
	if alloc > 64<<20 {
		t.Errorf("allocated %d MiB: closures were listed whole", alloc>>20)
	}
}

// A denied dependency whose name starts with '.' (writeText ".env",
// which Nix takes; Nix 2.8 takes ".-env" too) keeps its dependent out
// under closure_deny = "skip": the closure rule read such a path as no
// store path, denied by nothing, and cachix push would have uploaded it
// inside the app's closure.
func TestClosureDeniesDotName(t *testing.T) {
	for i, name := range []string{".secret-env", ".-secret-env", "..-secret-env"} {
		app, secret := storePath(2*i+1, "app-1.0"), storePath(2*i+2, name)
		skippedForDependency(t, denyConfig(t, "*secret*"), app, secret)
	}
}

// A denied dependency whose base name has no '-' after its hash (Nix's
// parser does not check that character, and reads the name after it)
// keeps its dependent out under closure_deny = "skip": the closure rule
// read it as no store path, denied by nothing, and the pusher would have
// uploaded it inside the app's closure.
func TestClosureDeniesPathNixParsesWithoutDash(t *testing.T) {
	app := storePath(1, "app-1.0")
	secret := storePath(2, "x")
	secret = secret[:len(secret)-len("-x")] + "_secret-env"
	if _, err := storepath.Parse(storepath.StoreDir(), secret); err == nil {
		t.Fatalf("%s parses: the test needs a path only Nix takes", secret)
	}
	cfg := denyConfig(t, "secret-*")
	p := skippedForDependency(t, cfg, app, secret)
	// Given its whole closure (the worker's other path), the same.
	if td := policy.DecideTarget(cfg.Targets[0], p, nil, &policy.Closure{Paths: []string{app, secret}}); td.Selected {
		t.Errorf("decision on %s with its whole closure = %+v, want skipped", app, td)
	}
}

// skippedForDependency checks that app, whose closure is app and secret,
// gets that closure from RuleClosures and is skipped for secret under
// cfg's closure rule; it returns app parsed.
func skippedForDependency(t *testing.T, cfg *config.Config, app, secret string) storepath.Path {
	t.Helper()
	g := gatherer(map[string][]string{app: {app, secret}, secret: {}})
	out, err := g.RuleClosures(context.Background(), cfg, []string{app})
	if err != nil {
		t.Fatal(err)
	}
	if got := out[app]; got == nil || !slices.Equal(got.Paths, []string{app, secret}) {
		t.Fatalf("closure of %s = %v, want it with %s", app, got, secret)
	}
	p, err := storepath.Parse(storepath.StoreDir(), app)
	if err != nil {
		t.Fatal(err)
	}
	if td := policy.DecideTarget(cfg.Targets[0], p, nil, out[app]); td.Selected || td.Dependency != secret {
		t.Errorf("decision on %s = %+v, want skipped for %s inside its closure", app, td, secret)
	}
	return p
}
