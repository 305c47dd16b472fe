package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
)

// secondFails answers the first PathInfos from infos and fails every
// later one, as a Nix that stops answering between two queries.
type secondFails struct {
	infos map[string]nixstore.PathInfo
	calls int
}

func (s *secondFails) PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]nixstore.PathInfo, error) {
	s.calls++
	if s.calls > 1 {
		return nil, errors.New("nix-store --serve: connection reset")
	}
	out := map[string]nixstore.PathInfo{}
	for k, v := range s.infos {
		out[k] = v
	}
	return out, nil
}

// A target whose closure rule is max_nar_size alone (no deny) does not
// push blind when the closures cannot be read: app's closure holds a path
// larger than max_nar_size, and with closure_deny = "skip" it must not go
// up. Here the facts come, and the closure query of the batch's other
// root (gone from the store meanwhile) fails.
func TestRunMaxNarSizeClosureUnknownNotPushed(t *testing.T) {
	fakeStore(t)
	tg := mkTarget(t, "main", []string{"*"}, nil)
	tg.ClosureDeny, tg.MaxNarSize = config.ClosureSkip, 1<<20
	e := newEnv(t, tg)
	ps := build(t, "app-1.0")
	big, gone := mkPath("big-1.0"), mkPath("gone-1.0")
	e.add(t, "main", ps[0], gone)
	w := e.worker(nil)
	f := &fakePusher{}
	w.pushers["main"] = f
	w.facts.gather = pathfacts.NewWith(e.cfg, &secondFails{infos: map[string]nixstore.PathInfo{
		ps[0].String(): {Path: ps[0].String(), Valid: true, NarSize: 1 << 10, References: []string{big.String()}},
		big.String():   {Path: big.String(), Valid: true, NarSize: 2 << 20},
	}})
	_ = run(t, w, Once)
	calls, _ := f.Calls()
	for _, c := range calls {
		if slices.Contains(c, ps[0].String()) {
			t.Fatalf("pushed %s, whose closure holds a path larger than max_nar_size, without reading its closure: %q\n%s", ps[0], calls, e.log)
		}
	}
}

// invalidInfos answers as a Nix whose database no longer holds a path
// whose files are still there (a garbage collection half done).
type invalidInfos struct{ path string }

func (s invalidInfos) PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]nixstore.PathInfo, error) {
	out := map[string]nixstore.PathInfo{}
	for _, p := range paths {
		out[p] = nixstore.PathInfo{Path: p, Valid: p != s.path, NarSize: 1 << 10}
	}
	return out, nil
}

// A path Nix says is not valid has no closure to check, whether the
// target's closure rule is a deny or max_nar_size alone: it is dropped
// as such, not handed to the pusher (which would skip it and fail the
// batch) as a max_nar_size-only target used to.
func TestRunMaxNarSizeInvalidPathNotPushed(t *testing.T) {
	for _, deny := range []bool{false, true} {
		t.Run(map[bool]string{false: "max_nar_size", true: "deny"}[deny], func(t *testing.T) {
			fakeStore(t)
			var denied []string
			if deny {
				denied = []string{"secret-*"}
			}
			tg := mkTarget(t, "main", []string{"*"}, denied)
			tg.MaxNarSize = 1 << 20
			e := newEnv(t, tg)
			ps := build(t, "app-1.0", "lib-1.0")
			e.add(t, "main", ps[0], ps[1])
			w := e.worker(nil)
			f := &fakePusher{}
			w.pushers["main"] = f
			w.facts.gather = pathfacts.NewWith(e.cfg, invalidInfos{path: ps[0].String()})
			_ = run(t, w, Once)
			calls, _ := f.Calls()
			if len(calls) != 1 || !slices.Equal(calls[0], []string{ps[1].String()}) {
				t.Fatalf("pusher calls %q, want one with %s alone (%s is not valid)\n%s", calls, ps[1], ps[0], e.log)
			}
			if !strings.Contains(e.log.String(), "not a valid path in the Nix store") {
				t.Errorf("the log does not say why %s was left out:\n%s", ps[0], e.log)
			}
		})
	}
}
