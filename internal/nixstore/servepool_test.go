package nixstore

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// A walk shared among processes, a path a question, says what one
// `nix path-info --recursive --json` says of a real closure: a root, a
// fan of six dependencies (a level big enough for a second process) and
// a chain under one of them.
func TestServePoolRealNix(t *testing.T) {
	salt := nixtest.Salt()
	drv := func(name, body string) string {
		return fmt.Sprintf(`derivation { name = "sp-%s"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %s %s > $out" ]; }`, name, salt, body)
	}
	expr := fmt.Sprintf(`let c = %s; b = %s; d1 = %s; d2 = %s; d3 = %s; d4 = %s; d5 = %s; d6 = %s; in %s`,
		drv("c", ""), drv("b", "${c}"), drv("d1", "${b}"), drv("d2", ""), drv("d3", "${c}"), drv("d4", ""), drv("d5", ""), drv("d6", ""),
		drv("app", "${d1} ${d2} ${d3} ${d4} ${d5} ${d6}"))
	_, outs := nixtest.Build(t, expr)
	missing := "/nix/store/00000000000000000000000000000000-sp-missing"
	pool := newServePool(context.Background(), Nix{}, 3)
	pool.chunk, pool.perProc = 1, 2
	got, err := walk(true, []string{outs[0], missing}, pool.ask)
	pool.close(err != nil)
	if err != nil {
		t.Fatal(err)
	}
	pool.reaped()
	if pool.started < 2 {
		t.Errorf("%d processes started; a level of 6 paths, one a question, should start a second", pool.started)
	}
	want, err := Nix{}.pathInfos(context.Background(), true, maxArgBytes, []string{outs[0], missing})
	if err != nil {
		t.Fatal(err)
	}
	g := byPath(got)
	if len(got) != len(g) || !slices.Equal(slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("pool gave %v, path-info %v", slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(want)))
	}
	for p, w := range want {
		if v := g[p]; v.Valid != w.Valid || v.NarSize != w.NarSize || v.Deriver != w.Deriver || !slices.Equal(v.References, w.References) {
			t.Errorf("%s: pool %+v, path-info %+v", p, v, w)
		}
	}
	if len(want) != 10 {
		t.Errorf("%d infos, want 9 paths and the missing one", len(want))
	}
}

// fakeServe writes a nix-store whose first start answers with first and
// whose others answer with other, each then running tail (a shell line).
// The first then holds its stdout open, as hang does: until it is
// killed, the test lets it go, or the test's process is gone.
func fakeServe(t *testing.T, first, other *serveReply, tail string) string {
	dir := t.TempDir()
	for name, r := range map[string]*serveReply{"first": first, "other": other} {
		if err := os.WriteFile(filepath.Join(dir, name), r.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "release"), nil, 0o644) })
	hang := "while [ ! -e $d/release ] && kill -0 $PPID 2>/dev/null; do sleep 0.05; done"
	script := fmt.Sprintf("#!/bin/sh\nd=%s\nif mkdir $d/started 2>/dev/null; then cat $d/first; %s; exit; fi\ncat $d/other\n%s\n", dir, hang, strings.ReplaceAll(tail, "$hang", hang))
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func poolPaths(n int) []string {
	var paths []string
	for i := range n {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-sp-%d", i, i))
	}
	return paths
}

// A process that fails mid-answer fails the walk at once, with what it
// printed, even while another holds a question it will never answer;
// and that one is ended, not waited for.
func TestServePoolProcessFails(t *testing.T) {
	paths := poolPaths(8)
	// The first answers the handshake, then nothing; the others cut
	// their first answer short.
	dir := fakeServe(t, hello(), hello().str(paths[0]).str(""), "echo 'error: database is broken' >&2; exit 1")
	pool := newServePool(context.Background(), Nix{BinDir: dir}, 2)
	pool.chunk, pool.perProc = 1, 2
	var err error
	var msg string
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err = walk(false, paths, pool.ask)
		msg = pool.close(err != nil)
	}()
	// The first process never answers until the test ends: a walk
	// that waited for it would not return, however fast the machine.
	select {
	case <-done:
	case <-time.After(eventually.Left(t)):
		t.Fatal("the walk did not return: it waited for the process that never answers")
	}
	if err == nil {
		t.Fatal("the walk succeeded")
	}
	if !strings.Contains(msg, "database is broken") {
		t.Errorf("close said %q, not what the failed process printed (walk: %v)", msg, err)
	}
}

// A process that never finishes its handshake costs the walk nothing:
// the first answers every question, and the one still starting is
// killed when the walk is over rather than left for the timeout.
func TestServePoolStartHangs(t *testing.T) {
	paths := poolPaths(8)
	first := hello()
	for _, p := range paths {
		first.info(p, "", 100).str("")
	}
	dir := fakeServe(t, first, new(serveReply), "$hang")
	pool := newServePool(context.Background(), Nix{BinDir: dir}, 2)
	pool.chunk, pool.perProc = 1, 2
	var infos []PathInfo
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		infos, err = walk(false, paths, pool.ask)
		pool.close(err != nil)
		if err == nil {
			pool.reaped()
		}
	}()
	// The one still starting never answers its handshake until the test
	// ends: a pool that waited for it would not return.
	select {
	case <-done:
	case <-time.After(eventually.Left(t)):
		t.Fatal("the walk and its end did not return: the process still starting was waited for")
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(paths) || len(byPath(infos)) != len(paths) {
		t.Errorf("%d infos for %d paths", len(infos), len(paths))
	}
	if pool.started != 2 {
		t.Errorf("%d processes started; 8 questions should start a second", pool.started)
	}
}
