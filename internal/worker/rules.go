package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// The rules at push time. An entry says only that a path was selected when
// it was queued, by the rules of that moment (or that someone wrote it):
// right before pushing, the worker applies the rules it has now (the
// target's patterns, the path still in the store, the closure rule) and
// drops what they no longer select. One decision (config's) serves the
// hook, explain and the worker alike.

// closures holds the runtime closures of a batch's paths, asked of Nix in
// one call when a closure can matter (the target denies something).
type closures struct {
	of  map[string][]string
	err error
}

// batchClosures asks Nix once for the closures of the batch's entries.
func (w *Worker) batchClosures(ctx context.Context, t *config.Target, entries []*queue.Entry) closures {
	if !t.HasDeny() {
		return closures{}
	}
	paths := make([]string, 0, len(entries))
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	of, err := w.nix.Closures(ctx, paths...)
	return closures{of: of, err: err}
}

// reselect returns why the current rules leave e out ("" when they still
// select it), or an error when that cannot be told now: then the entry
// waits for a retry, since pushing blind could upload a denied path.
func (w *Worker) reselect(t *config.Target, e *queue.Entry, cl closures, log *logrus.Entry) (string, error) {
	p, err := storepath.Parse(storepath.StoreDir(), e.Path)
	if err != nil {
		return "no longer selected: not a store path", nil
	}
	if d := t.Rules.Decide(p); !d.Selected {
		return "no longer selected: " + d.Reason(), nil
	}
	if _, err := os.Lstat(e.Path); errors.Is(err, fs.ErrNotExist) {
		return "no longer in the store (garbage-collected)", nil
	}
	if !t.HasDeny() {
		return "", nil
	}
	if cl.err != nil {
		return "", fmt.Errorf("cannot tell whether its closure holds a path denied by the rules of %s: %w", t.Name, cl.err)
	}
	closure, ok := cl.of[e.Path]
	if !ok {
		return "not a valid path in the Nix store (partly deleted?): its closure cannot be checked", nil
	}
	dep, pat := t.ClosureDenied(e.Path, closure)
	if dep == "" {
		return "", nil
	}
	if t.ClosureDeny == config.ClosurePush {
		log.WithFields(logrus.Fields{"path": e.Path, "denied": dep, "rule": fmt.Sprintf("deny %q", pat)}).
			Warn("uploading a denied path inside the closure of a selected one (closure_deny = \"push\")")
		return "", nil
	}
	return config.ClosureSkipReason(dep, pat), nil
}
