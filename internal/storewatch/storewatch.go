// Package storewatch finds the store paths that become valid while it
// watches, without root: Nix takes a lock file <path>.lock beside each
// path it builds or substitutes and deletes it once the path is
// registered, in the store directory, which everyone may read. Watching
// that directory with inotify for deleted *.lock files is how `cachix
// watch-store` and `watch-exec` find new paths too; it costs nothing per
// path already in the store, unlike listing the store before and after.
//
// The store is shared: a path another user's build registers meanwhile is
// seen too. Callers apply their rules to whatever is found, and check
// validity with Nix (a lock is also deleted after a failed build).
package storewatch

import (
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// maxPaths bounds what one watch collects.
const maxPaths = 1 << 20

// Watcher collects store paths whose lock file was deleted.
type Watcher struct {
	storeDir string
	w        *fsnotify.Watcher
	done     chan struct{}

	mu       sync.Mutex
	paths    map[string]bool
	last     time.Time // of the last event
	overflow bool
}

// Start watches storeDir.
func Start(storeDir string) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fw.Add(storeDir); err != nil {
		fw.Close()
		return nil, err
	}
	w := &Watcher{storeDir: storeDir, w: fw, done: make(chan struct{}), paths: map[string]bool{}, last: time.Now()}
	go w.loop()
	return w, nil
}

func (w *Watcher) loop() {
	defer close(w.done)
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			w.event(ev)
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.mu.Lock()
				w.overflow = true
				w.mu.Unlock()
			}
		}
	}
}

func (w *Watcher) event(ev fsnotify.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = time.Now()
	if !ev.Has(fsnotify.Remove) || !strings.HasSuffix(ev.Name, ".lock") {
		return
	}
	p := strings.TrimSuffix(ev.Name, ".lock")
	if filepath.Dir(p) != w.storeDir || strings.HasSuffix(p, ".drv") {
		// Derivations are build recipes, not outputs: the hook never
		// sees them either.
		return
	}
	if _, err := storepath.Parse(w.storeDir, p); err != nil {
		return
	}
	if len(w.paths) < maxPaths {
		w.paths[p] = true
	} else {
		w.overflow = true
	}
}

// Stop waits until no event has come for quiet (events of the last
// moments before the watched command exited may still be in flight), at
// most max, stops watching and returns the paths seen, sorted. overflow
// reports that the kernel dropped events, so some paths may be missing.
func (w *Watcher) Stop(quiet, max time.Duration) (paths []string, overflow bool) {
	start := time.Now()
	deadline := start.Add(max)
	for {
		w.mu.Lock()
		// Counted from the call at the earliest: an event still in
		// flight has not moved last, however long ago the one before.
		since := min(time.Since(w.last), time.Since(start))
		w.mu.Unlock()
		if since >= quiet || time.Now().After(deadline) {
			break
		}
		time.Sleep(min(quiet-since, time.Until(deadline)) + time.Millisecond)
	}
	w.w.Close()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range w.paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, w.overflow
}
