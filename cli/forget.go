package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// lockWait bounds how long forget waits for a worker to exit before it
// gives up on removing queued entries.
const lockWait = 15 * time.Second

// forgetOptions are forget's flags.
type forgetOptions struct {
	target                           string
	dropped, corrupt, pushed, dryRun bool
}

func runForget(e *env, o *forgetOptions) int {
	if o.corrupt && o.target != "" {
		// A corrupt entry could not be read, so its target is unknown:
		// deleting every one would do what --target says it will not.
		e.errorf("forget: --corrupt takes no --target: a corrupt entry could not be read, so its target is unknown (forget --corrupt deletes them all)")
		return 2
	}
	c, q, ok := e.openQueue()
	if !ok {
		return 1
	}
	verb := "forgot"
	if o.dryRun {
		verb = "would forget"
	}
	status := 0
	if o.dropped {
		entries, err := q.ListDropped()
		if err != nil {
			e.errorf("%v", err)
			return 1
		}
		ofTarget := func(en *queue.Entry) bool { return o.target == "" || en.Target == o.target }
		if _, ok := e.forgetEach(entries, ofTarget, removeDropped(q), o.dryRun, func(en *queue.Entry) string {
			return fmt.Sprintf("%s dropped %s -> %s (%s)", verb, en.Path, en.Target, en.Reason)
		}); !ok {
			status = 1
		}
	}
	if o.corrupt {
		names, err := q.CorruptNames()
		if err != nil {
			e.errorf("%v", err)
			return 1
		}
		sort.Strings(names)
		for _, n := range names {
			if !o.dryRun {
				if err := q.RemoveCorrupt(n); err != nil {
					e.errorf("%v", err)
					status = 1
					continue
				}
			}
			// Any name can be put in entries/, and is kept here.
			statusLine(e.stdout, "%s corrupt %s", verb, n)
		}
	}
	if o.pushed {
		if st := e.forgetPushed(c, q, o.target, o.dryRun); st != 0 {
			status = st
		}
	}
	if o.dropped || o.corrupt || o.pushed {
		return status
	}

	// Queued entries: of target T, or of targets no longer configured.
	want := func(t string) bool {
		if o.target != "" {
			return t == o.target
		}
		return c.Target(t) == nil
	}
	// What was queued before forget waited for the lock: a hook that
	// queues meanwhile finds the lock taken and counts on its holder to
	// push, as on a worker. So, as a worker does, forget looks once more
	// after it lets go, and starts one for what came.
	before := queuedKeys(q)
	if !o.dryRun {
		lock, err := e.takeLock(q)
		if err != nil {
			e.errorf("%v", err)
			return 1
		}
		defer func() {
			lock.Unlock()
			if queuedSince(q, before) {
				start := e.ensureWorker
				if start == nil {
					start = worker.EnsureRunning
				}
				if err := start(c, q); err != nil {
					e.errorf("starting a worker for what was queued meanwhile: %v", err)
				}
			}
		}()
	}
	entries, _, err := q.List()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	// A pair forgotten and queued again meanwhile is new.
	for _, en := range entries {
		if want(en.Target) {
			delete(before, en.Key())
		}
	}
	n, ok := e.forgetEach(entries, func(en *queue.Entry) bool { return want(en.Target) }, removeQueued(q), o.dryRun, func(en *queue.Entry) string {
		return fmt.Sprintf("%s queued %s -> %s (not pushed)", verb, en.Path, en.Target)
	})
	if !ok {
		status = 1
	}
	// Their pins too (push --pin): a pin waits for its root's entry.
	pins, _, err := q.ListPins()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	// And those a failed drop left aside, asked for again, which the
	// next worker would link back and pin.
	aside, _, err := q.PinsAsideAsked()
	if err != nil {
		e.errorf("%v", err)
		status = 1
	}
	inPins := map[string]bool{}
	for _, p := range pins {
		inPins[p.Key()] = true
	}
	for _, p := range aside {
		if !inPins[p.Key()] {
			pins = append(pins, p)
		}
	}
	for _, p := range pins {
		if !want(p.Target) {
			continue
		}
		delete(before, "pin "+p.Key())
		if !o.dryRun {
			remove := q.RemovePin
			if !inPins[p.Key()] {
				remove = q.ForgetPinAside
			}
			if err := remove(p); err != nil {
				e.errorf("%v", err)
				status = 1
				continue
			}
		}
		n++
		statusLine(e.stdout, "%s pin %q of %s -> %s (not pinned)", verb, p.Name, p.Path, p.Target)
	}
	if n == 0 {
		what := "of targets no longer in the config"
		if o.target != "" {
			what = fmt.Sprintf("of target %q", o.target)
		}
		fmt.Fprintf(e.stdout, "no queued entries %s\n", what)
	}
	return status
}

// queuedKeys are the keys of the entries, the pins (prefixed "pin ") and
// the package lists to read again (prefixed "list ") queued now. forget
// leaves lists/ to the worker: a list's paths are for targets it tells
// only once read, so no --target says which record to forget.
func queuedKeys(q *queue.Queue) map[string]bool {
	keys := map[string]bool{}
	names, _ := q.Names()
	for _, k := range names {
		keys[k] = true
	}
	pins, _ := q.PinNames()
	for _, k := range pins {
		keys["pin "+k] = true
	}
	lists, _ := q.UnreadListNames()
	for _, k := range lists {
		keys["list "+k] = true
	}
	return keys
}

// queuedSince reports whether an entry, a pin or a list to read again
// not in before is queued.
func queuedSince(q *queue.Queue, before map[string]bool) bool {
	for k := range queuedKeys(q) {
		if !before[k] {
			return true
		}
	}
	return false
}

// forgetEach removes (unless dryRun) the entries that want selects, all
// in one call of remove, which returns why each it could not remove
// failed, by key; it says line of each removed, in order, and returns
// how many, and false if one could not be removed.
func (e *env) forgetEach(entries []*queue.Entry, want func(*queue.Entry) bool, remove func([]*queue.Entry) map[string]error, dryRun bool, line func(*queue.Entry) string) (int, bool) {
	var sel []*queue.Entry
	for _, en := range sortEntries(entries) {
		if want(en) {
			sel = append(sel, en)
		}
	}
	var failed map[string]error
	if !dryRun && len(sel) > 0 {
		failed = remove(sel)
	}
	n, ok := 0, true
	for _, en := range sel {
		if err := failed[en.Key()]; err != nil {
			e.errorf("%v", err)
			ok = false
			continue
		}
		n++
		// What a dropped entry's file says, escaped as status says it.
		statusLine(e.stdout, "%s", line(en))
	}
	return n, ok
}

// removeQueued removes queued entries together: the entries of a bulk
// file leave it in one rewrite, which gives the file a new name, so that
// removing them one by one left all but the first queued. A pair queued
// twice (by the hook, then by push) has a copy in each file that holds
// it, and List gives one: every copy goes, and a pair still queued after
// is a failure, not "forgot".
func removeQueued(q *queue.Queue) func([]*queue.Entry) map[string]error {
	return func(es []*queue.Entry) map[string]error {
		byKey := make(map[string]*queue.Entry, len(es))
		for _, e := range es {
			byKey[e.Key()] = e
		}
		all := slices.Clone(es)
		if names, err := q.BulkNames(); err == nil {
			for _, n := range names {
				_, _ = q.ReadBulk(n, func(e *queue.Entry) {
					if byKey[e.Key()] != nil {
						all = append(all, e)
					}
				})
			}
		}
		failed := q.Apply(queue.Changes{Done: all}).Failed
		for k, e := range byKey {
			if _, still := q.Get(k); still && failed[k] == nil {
				failed[k] = fmt.Errorf("%s -> %s is still queued: a copy of it could not be removed", e.Path, e.Target)
			}
		}
		return failed
	}
}

// removeDropped removes dropped entries, each its own file.
func removeDropped(q *queue.Queue) func([]*queue.Entry) map[string]error {
	return func(es []*queue.Entry) map[string]error {
		failed := map[string]error{}
		for _, en := range es {
			if err := q.RemoveDropped(en); err != nil {
				failed[en.Key()] = err
			}
		}
		return failed
	}
}

// takeLock takes the worker lock, so that no worker rewrites an entry
// being removed, waiting up to lockWait for a running worker to exit.
func (e *env) takeLock(q *queue.Queue) (*queue.Lock, error) {
	ctx, cancel := context.WithTimeout(e.ctx, lockWait)
	defer cancel()
	for {
		lock, err := q.AcquireWorker(ctx, time.Second)
		if err != nil || lock != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("a worker is draining %s: stop it (systemctl stop cachix-filter-hook-worker) or run forget when it has exited", q.Dir)
			}
			return lock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("a worker is draining %s: stop it (systemctl stop cachix-filter-hook-worker) or run forget when it has exited", q.Dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func sortEntries(entries []*queue.Entry) []*queue.Entry {
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Target != entries[j].Target {
			return entries[i].Target < entries[j].Target
		}
		return entries[i].Path < entries[j].Path
	})
	return entries
}

// forgetPushed deletes the record of what was pushed to target's
// destination, or every record. A running worker notices and starts a
// new one (see pushed.Record.Replaced).
func (e *env) forgetPushed(c *config.Config, q *queue.Queue, target string, dryRun bool) int {
	key, what := "", "every target"
	if target != "" {
		t := c.Target(target)
		if t == nil {
			e.errorf("forget --pushed: no target %q in the config", target)
			return 1
		}
		key, what = t.RecordKey(), fmt.Sprintf("target %q", target)
	}
	if dryRun {
		fmt.Fprintf(e.stdout, "would forget the record of paths pushed to %s\n", what)
		return 0
	}
	n, err := pushed.Forget(q.Dir, key)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	if n == 0 {
		fmt.Fprintf(e.stdout, "no record of paths pushed to %s\n", what)
		return 0
	}
	fmt.Fprintf(e.stdout, "forgot the record of paths pushed to %s: they will be queued and pushed again\n", what)
	return 0
}
