package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Pins (push --pin): each asks for `cachix pin CACHE NAME ROOT` once
// ROOT's closure is in that target's cache, which is when its entry for
// that target has left the queue pushed (cachix push uploads whole
// closures) or was never queued because it had been pushed before. A pin
// whose root was dropped is dropped with it. A failed pin call backs off
// as a push does. The pin file is removed only after cachix pin
// succeeded: a SIGKILL loses no pin, and one right between the two
// repeats that one call (the same name and path: one more revision of the
// same path in Cachix).

// scanPins refreshes the cache of pins from pins/.
func (w *Worker) scanPins() {
	names, err := w.q.PinNames()
	if err != nil {
		// Logged once per error: scanPins runs every round.
		if err.Error() != w.pinsFailed {
			w.pinsFailed = err.Error()
			w.log.WithError(err).Error("listing pins")
		}
		return
	}
	w.pinsFailed = ""
	seen := make(map[string]bool, len(names))
	var asked map[string]bool // pinasks/, listed once a pin backed off is met
	for _, n := range names {
		seen[n] = true
		if p, ok := w.pins[n]; ok {
			if !p.NextAttempt.IsZero() && w.pinning[p.Target] != n {
				if asked == nil {
					asked = w.pinAsks()
				}
				if asked[n] {
					w.pinAskedAgain(p)
				}
			}
			continue
		}
		// Read again each round, logged once: a pin unreadable for a
		// reason of the moment (EMFILE, EIO) is made once it can be
		// read, not left for the next worker.
		p, err := w.q.ReadPin(n)
		if w.pinReadFails != nil {
			if ferr := w.pinReadFails(n); ferr != nil {
				p, err = nil, ferr
			}
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				if _, logged := w.badPins[n]; !logged {
					w.log.WithError(err).Error("unreadable pin")
				}
				// This round's kind: doPins waits for a pin
				// unreadable for the moment, not for one that is
				// none.
				w.badPins[n] = errors.Is(err, queue.ErrCorrupt)
			}
			continue
		}
		delete(w.badPins, n)
		w.adoptPin(p, time.Now())
		w.pins[n] = p
	}
	for n := range w.pins {
		if !seen[n] {
			delete(w.pins, n)
		}
	}
	for n := range w.badPins {
		if !seen[n] {
			delete(w.badPins, n)
		}
	}
	for n := range w.pinDropRecorded {
		if !seen[n] {
			delete(w.pinDropRecorded, n)
		}
	}
	for n := range w.pinMade {
		if !seen[n] {
			delete(w.pinMade, n)
		}
	}
	for n := range w.pinDropFailed {
		if !seen[n] {
			delete(w.pinDropFailed, n)
		}
	}
	if w.state != nil {
		w.state.pinDropsDone(w.q.Dir, func(k string) bool { return seen[k] })
	}
	// An outcome is kept while a pin names its root: a worker that pins
	// every build would otherwise keep one per root for its life. A pin
	// read after its root's outcome went goes by dropped/ (see doPins).
	named := make(map[string]bool, len(w.pins))
	for _, p := range w.pins {
		if k, err := p.EntryKey(); err == nil {
			named[k] = true
		}
	}
	for k := range w.rootOutcomes {
		if !named[k] {
			delete(w.rootOutcomes, k)
		}
	}
}

// pinAskedAgain makes p, backed off, due now when push --pin asked for
// it again since the worker took its last ask (queue.AddPins left an ask
// with a new Queued).
func (w *Worker) pinAskedAgain(p *queue.Pin) {
	if asked, ok := w.q.PinAsked(p.Key()); ok && asked.New(p) {
		p.NextAttempt = time.Time{}
		asked.Apply(p)
	}
}

// pinAsks lists the pins asked for again; none when pinasks/ cannot be
// listed (logged once per error, as it is looked at every round), then
// looked for again next round.
func (w *Worker) pinAsks() map[string]bool {
	names, err := w.q.PinAskNames()
	switch {
	case err == nil:
		w.pinAsksFailed = ""
	case err.Error() != w.pinAsksFailed:
		w.pinAsksFailed = err.Error()
		w.log.WithError(err).Error("listing the pins asked for again")
	}
	asked := make(map[string]bool, len(names))
	for _, n := range names {
		asked[n] = true
	}
	return asked
}

// takePinAsk takes p's ask, if any, as its call starts: written into its
// file first, so that a call cut short (the worker stopping, SIGKILL)
// loses no ask, then removed, so that an ask made during the call is one
// pinDone sees.
func (w *Worker) takePinAsk(log *logrus.Entry, p *queue.Pin) {
	asked, ok := w.q.PinAsked(p.Key())
	if !ok {
		return
	}
	if asked.New(p) {
		p.NextAttempt = time.Time{}
		asked.Apply(p)
	}
	// Written even when p holds the ask already: scanPins took it in
	// memory only (pinAskedAgain), and the file is still backed off.
	if err := w.q.UpdatePin(p); err != nil {
		log.WithError(err).Error("updating pin")
		return // the ask stays; p.Queued tells it taken
	}
	if err := w.q.TakePinAsk(p.Key()); err != nil {
		log.WithError(err).Error("taking the ask for a pin")
	}
}

// rootDecided records how this worker decided e, a root a pin waits for
// or may yet (its entry says pinned, or the batch knew a pin of it): why
// it was dropped, or "" when it was pushed. The last word is its pins':
// a drop comes after the pin was queued, push --pin queueing the root
// (or finding it queued) before the pin, unless a later push put it in
// the cache. The worker's own order, where the dropped file's time,
// compared with the pin's, missed a drop after the clock was stepped
// back.
func (w *Worker) rootDecided(e *queue.Entry, pinned bool, why string) {
	for _, p := range w.pins {
		pinned = pinned || p.Target == e.Target && p.Path == e.Path
	}
	// A push after a drop recorded here is the last word, pinned or
	// not: the root is in the cache, and a later push --pin, finding it
	// pushed before, queues its pin alone.
	_, known := w.rootOutcomes[e.Key()]
	if pinned || known && why == "" {
		w.rootOutcomes[e.Key()] = why
	}
}

// recordedPushed reports whether the record of pushed paths has root for
// t's destination, as push --pin reads it.
func (w *Worker) recordedPushed(t *config.Target, root string) bool {
	if w.cfg.Queue.RememberPushed <= 0 {
		return false
	}
	sp, err := storepath.Parse(storepath.StoreDir(), root)
	if err != nil {
		return false
	}
	h, err := pushed.ParseHash(sp.Hash)
	if err != nil {
		return false
	}
	rec, err := pushed.OpenRead(w.q.Dir, t.RecordKey(), w.cfg.Queue.RememberPushed)
	if err != nil {
		return false
	}
	defer rec.Close()
	return rec.Has(h, time.Now())
}

// adoptPin puts a pin read from disk on the worker's clock, as adopt does
// an entry: its back-off is a wall-clock time, maybe written before the
// clock was stepped back, so one that reaches further than
// queue.retry_max is cut to it. now carries the monotonic reading, which
// the pin's next attempt then carries too: no later step moves it.
func (w *Worker) adoptPin(p *queue.Pin, now time.Time) {
	if p.NextAttempt.IsZero() {
		return
	}
	p.NextAttempt = now.Add(WaitLeft(p.NextAttempt, now, w.cfg.Queue.RetryMax))
}

// pinList returns the pins known, for the metrics.
func (w *Worker) pinList() []*queue.Pin {
	out := make([]*queue.Pin, 0, len(w.pins))
	for _, p := range w.pins {
		out = append(out, p)
	}
	return out
}

// doPins makes the pins that are due. It reports whether pins of
// configured targets are left, and when the first of those waiting for a
// retry is due: now for one kept as it was dropped, which is decided
// again next round.
func (w *Worker) doPins(ctx context.Context, now time.Time) (left bool, next time.Time) {
	if w.pinsAside {
		// Linked back before the scan, which then reads them; one
		// that cannot be yet is a pin left, not one forgotten.
		left, next = w.relinkPinsAside(now)
	}
	w.scanPins()
	drop := func(log *logrus.Entry, p *queue.Pin, reason string) {
		if w.dropPin(log, p, reason) {
			left, next = true, now
		} else if _, failed := w.pins[p.Key()]; failed {
			// Its file stays, dropped again after its back-off
			// (pinDropError): left, not due now, or a drop that
			// keeps failing would spin.
			left = true
			if next.IsZero() || p.NextAttempt.Before(next) {
				next = p.NextAttempt
			}
		}
	}
	for _, corrupt := range w.badPins {
		// Unreadable for a reason of the moment: a pin all the same,
		// read again next round. One that is no pin is not waited for.
		left = left || !corrupt
	}
	pins := w.pinList()
	sort.Slice(pins, func(i, j int) bool { return pins[i].Queued.Before(pins[j].Queued) })
	rescanned := false
	for _, p := range pins {
		if ctx.Err() != nil {
			return true, next
		}
		if w.pinMade[p.Key()] {
			if w.q.RemovePin(p) == nil {
				w.pinRemoved()
				delete(w.pins, p.Key())
				delete(w.pinMade, p.Key())
			} else {
				left = true // its file stays: not made again, but there
			}
			continue
		}
		if w.pinning[p.Target] == p.Key() {
			left = true // its call runs
			continue
		}
		t := w.cfg.Target(p.Target)
		if t == nil {
			continue // kept, as entries of a removed target are
		}
		if p.NextAttempt.After(now) {
			left = true
			if next.IsZero() || p.NextAttempt.Before(next) {
				next = p.NextAttempt
			}
			continue
		}
		log := w.log.WithFields(logrus.Fields{"target": t.Name, "path": p.Path, "pin": p.Name})
		key, err := p.EntryKey()
		if err != nil {
			drop(log, p, "not a store path")
			continue
		}
		if _, queued := w.idx.slots[key]; !queued && !rescanned {
			// push --pin writes the root's entry before the pin: a pin
			// read after the round's scan may have an entry that scan
			// did not see. Not looked for again, the root was taken for
			// one pushed before and pinned ahead of its push.
			w.scan(now)
			rescanned = true
		}
		if _, queued := w.idx.slots[key]; queued {
			left = true // its closure is not in the cache yet
			continue
		}
		if why, ok := w.rootOutcomes[key]; ok {
			if why != "" {
				drop(log, p, "its root was dropped: "+why)
				continue
			}
		} else if e, ok := w.q.Dropped(key, time.Time{}, 0); ok && e.Pinned && !w.recordedPushed(t, p.Path) {
			// Dropped by an earlier worker: the drop is the pin's
			// when the entry was queued to be pinned (push --pin
			// marks the roots it queues). An entry not so marked
			// was dropped before push --pin, which found the root
			// in the cache; so was one whose root is recorded
			// pushed since (dropped/ keeps a drop for
			// queue.dropped_max_age): push --pin queues a pin
			// alone for such a root, and the cache has it.
			drop(log, p, "its root was dropped: "+e.Reason)
			continue
		} else if p.Attempts == 0 && w.cfg.Queue.RememberPushed > 0 && !w.recordedPushed(t, p.Path) {
			// Not queued, yet neither pushed here nor pushed before
			// push --pin (which queues a pin alone only for a root
			// recorded pushed): its entry was dropped, and dropped/
			// pruned since. A pin tried before passed this already.
			drop(log, p, "its root is neither queued nor recorded as pushed: its entry was dropped (log --path "+p.Path+" says why)")
			continue
		}
		// The rules of now, as for an entry: a root pushed before, or
		// before they changed, is pinned only where its name is still
		// selected (a package list may select it, which the worker
		// cannot tell here): what they deny never leaves the machine,
		// not even as a pin's name and path.
		if root, err := storepath.Parse(storepath.StoreDir(), p.Path); err == nil {
			if d, open := policy.ByNameUnlisted(t, root); !d.Selected && !open {
				drop(log, p, "the rules leave its root out: "+d.DropReason())
				continue
			}
		}
		if _, err := os.Lstat(p.Path); errors.Is(err, fs.ErrNotExist) {
			drop(log, p, "its root is no longer in the store (garbage-collected)")
			continue
		}
		if _, busy := w.pinning[t.Name]; busy {
			left = true // after the target's pin call that runs
			continue
		}
		pinner, err := w.newPinner(t)
		if err != nil {
			drop(log, p, err.Error())
			continue
		}
		w.startPin(ctx, log, pinner, p, t)
		left = true
	}
	return left, next
}

// relinkPinsAside links back the pins a failed drop left aside (see
// doPins). When neither tmp/ nor pinasks/ can be listed, some may be
// aside, unknown: that is logged once and said in state.json (status),
// and looked for again after a back-off, as a failed call is: left, and
// failing (next, the back-off's end), not due every round.
func (w *Worker) relinkPinsAside(now time.Time) (left bool, next time.Time) {
	if now.Before(w.pinsAsideNext) {
		return true, w.pinsAsideNext
	}
	n, err := w.q.RelinkPinsAside()
	if err == nil {
		w.pinsAside = n > 0
		w.pinsAsideFailed, w.pinsAsideTries, w.pinsAsideNext = "", 0, time.Time{}
		if w.state != nil && w.state.PinsAsideError != "" {
			w.state.pinsAsideError(w.q.Dir, "", now) // a past worker's too
		}
		return n > 0, time.Time{}
	}
	w.pinsAsideTries++
	w.pinsAsideNext = now.Add(Backoff(w.pinsAsideTries, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax))
	if said := err.Error(); said != w.pinsAsideFailed {
		w.pinsAsideFailed = said
		w.log.WithError(err).Error("looking for pins a failed drop left aside")
		if w.state != nil {
			w.state.pinsAsideError(w.q.Dir, truncate(said, 1000), now)
		}
	}
	return true, w.pinsAsideNext
}

// pinResult is what a pin call came to.
type pinResult struct {
	p    *queue.Pin
	log  *logrus.Entry
	err  error
	took time.Duration
	out  *pusher.Summary
	cut  bool // the worker is stopping: cut short, not failed (a success is one)
	// drop is why the rules leave the root out (pinClosureRule): no
	// call was made, and the pin is dropped with it.
	drop string
}

// pinTimeout bounds one cachix pin call, a single small API call:
// queue.push_timeout (an hour by default) is meant for uploading
// gigabytes, and a cachix that hangs on a pin holds its target's other
// pins while it runs.
const pinTimeout = 5 * time.Minute

var errPinTimedOut = errors.New("pin timed out")

// startPin runs one pin call on a goroutine of its own, as a push is: a
// cachix that hangs on a pin holds, up to w.pinTimeout, only the other
// pins of its target, not the loop and every push. Its result comes back
// on pinResults (see pinDone).
func (w *Worker) startPin(ctx context.Context, log *logrus.Entry, pinner pusher.Pinner, p *queue.Pin, t *config.Target) {
	w.takePinAsk(log, p)
	w.pinning[p.Target] = p.Key()
	name, path, keep, limit := p.Name, p.Path, p.Keep, w.pinTimeout
	// The rules that read the root's closure and sizes are asked here,
	// off the loop, under the pin's timeout: only a target that has
	// them asks Nix.
	var nix nixstore.Infos
	if policy.DeniesByName(t) || t.MaxNarSize > 0 {
		nix = w.pinInfos
		if nix == nil {
			nix = w.facts.nix
		}
	}
	go func() {
		start := time.Now()
		out := pusher.NewSummary(storepath.StoreDir())
		pctx, cancel := context.WithTimeoutCause(ctx, limit, errPinTimedOut)
		var drop string
		var err error
		if nix != nil {
			drop, err = pinClosureRule(pctx, nix, t, path)
			if err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), errPinTimedOut) {
				// Said as the bound it ran into, not as a bare
				// "context deadline exceeded".
				err = fmt.Errorf("asking Nix for the closure of %s timed out after %s (the pin's bound): %w", path, config.HumanDuration(limit), err)
			}
		}
		if err == nil && drop == "" {
			err = pinner.Pin(pctx, name, path, keep, out)
			if err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), errPinTimedOut) {
				err = fmt.Errorf("cachix pin timed out after %s; it and its process group were killed", config.HumanDuration(limit))
			}
		}
		cancel()
		out.Flush()
		w.pinResults <- &pinResult{p: p, log: log, err: err, drop: drop, took: time.Since(start), out: out, cut: err != nil && ctx.Err() != nil}
	}()
}

// pinClosureRule is why t's rules leave out the pin's root now by what
// they read of its closure and sizes (a dependency denied by name or
// larger than max_nar_size, the root larger than it), "" when they do
// not: the decision push would make (policy.DecideTarget), for a root
// pushed before the rules were tightened. Its name was judged already
// (doPins); one only a package list may select is judged here as if
// one did. An error says Nix could not be asked: the pin is not made
// blind, but tried again after a back-off.
func pinClosureRule(ctx context.Context, nix nixstore.Infos, t *config.Target, path string) (string, error) {
	root, err := storepath.Parse(storepath.StoreDir(), path)
	if err != nil {
		return "not a store path", nil
	}
	infos, err := nix.PathInfos(ctx, true, path)
	if err != nil {
		return "", fmt.Errorf("cannot tell whether the rules of %s leave out what the closure of %s holds: %w", t.Name, path, err)
	}
	closure := nixstore.ClosureOf(infos, path)
	if closure == nil {
		return "its root is " + ReasonInvalid, nil
	}
	f := &policy.Facts{NarSize: infos[path].NarSize}
	if _, open := policy.ByNameUnlisted(t, root); open {
		f.Listed = []policy.Listing{{Targets: []string{t.Name}, Closure: policy.ListInClosure}}
	}
	cl := &policy.Closure{Paths: closure, NarSize: func(p string) (int64, bool) {
		info, ok := infos[p]
		return info.NarSize, ok && info.NarSize > 0
	}}
	if td := policy.DecideTarget(t, root, policy.ForPin(f), cl); !td.Selected {
		return "the rules leave its root out: " + td.DropReason(), nil
	}
	return "", nil
}

// pinDone makes a pin call's outcome durable: the pin's file goes when
// it was made, else it is kept, backed off.
func (w *Worker) pinDone(res *pinResult) {
	delete(w.pinning, res.p.Target)
	p, log, err, took := res.p, res.log, res.err, res.took
	fields := logrus.Fields{"duration": took.Round(time.Millisecond).String()}
	if k := p.Keep.String(); k != "" {
		fields["keep"] = k
	}
	if text := res.out.Text(); text != "" {
		fields["output"] = text
	}
	if res.cut {
		return
	}
	if res.drop != "" {
		w.dropPin(log, p, res.drop)
		return
	}
	now := time.Now()
	if err == nil {
		// The outcome before the file goes, as for entries: wait is
		// woken by the file's removal and reads the outcome then.
		w.recordPin(p, history.Pinned, "", took)
		if asked, ok := w.q.PinAsked(p.Key()); ok && asked.New(p) && asked.KeepFor(p) != p.Keep {
			// Asked for again with another keep while the call ran,
			// which push said it will pin with: made again, now.
			p.NextAttempt = time.Time{}
			asked.Apply(p)
			if uerr := w.q.UpdatePin(p); uerr != nil {
				log.WithError(uerr).Error("updating pin")
			}
			log.WithFields(fields).Info("pinned; asked for again with another keep")
			w.state.pinned(w.q.Dir, p.Target, now)
			return
		}
		if rerr := w.q.RemovePin(p); rerr != nil {
			// Pinned: kept known, so that its file is not read again
			// as a new pin and pinned every round; only its removal
			// is tried again.
			log.WithError(rerr).Error("pinned, but removing the pin's file failed")
			w.pinMade[p.Key()] = true
		} else {
			w.pinRemoved()
			delete(w.pins, p.Key())
		}
		log.WithFields(fields).Info("pinned")
		w.state.pinned(w.q.Dir, p.Target, now)
		return
	}
	p.Attempts++
	p.LastAttempt = now
	p.LastError = truncate(err.Error(), 1000)
	p.NextAttempt = now.Add(Backoff(p.Attempts, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax))
	// Asked for again while the call ran (queue.AddPins left an ask, with
	// a new Queued): tried at once, not after a back-off. An ask after
	// this look stays on disk for the next round (pinAskedAgain).
	w.pinAskedAgain(p)
	if w.beforePinUpdate != nil {
		w.beforePinUpdate()
	}
	if uerr := w.q.UpdatePin(p); uerr != nil {
		log.WithError(uerr).Error("updating pin")
	}
	fields["error"] = err.Error()
	fields["retry_in"] = "0s"
	if !p.NextAttempt.IsZero() {
		fields["retry_in"] = time.Until(p.NextAttempt).Round(time.Second).String()
	}
	log.WithFields(fields).Warn("pin failed")
	w.recordPin(p, history.PinFailed, p.LastError, took)
	w.state.pinFailed(w.q.Dir, p.Target)
}

// dropPin gives up on a pin, with the reason. It reports whether the
// pin is kept all the same: push --pin asked for it again since the
// worker looked (its root maybe queued again after the round's scan), and
// it is decided again next round, the ask taken into its file; or asked
// for it as its file was removed, and it is queued anew.
// The outcome is recorded before the file goes (see pin), once: should
// the removal fail, the next round drops it again, but does not record
// it again (pinDropRecorded), or a stuck file would add a record every
// round, which wait would report as many times and which would rotate
// the history's other outcomes away.
func (w *Worker) dropPin(log *logrus.Entry, p *queue.Pin, reason string) (kept bool) {
	asked, ok, err := w.q.ReadPinAsk(p.Key())
	if err != nil {
		// Maybe asked for again: kept, no drop recorded, and decided
		// again at a later look, as DropPin does.
		w.pinDropError(log, p, "giving up on a pin", err)
		return false
	}
	if ok && asked.New(p) {
		w.takePinAsk(log, p)
		return true
	}
	if !w.pinDropRecorded[p.Key()] {
		w.recordPin(p, history.PinDropped, reason, 0)
		w.pinDropRecorded[p.Key()] = true
	}
	if w.beforePinDrop != nil {
		w.beforePinDrop()
	}
	requeued, err := w.q.DropPin(p)
	return w.pinDropped(log, p, reason, requeued, err)
}

// pinDropped is dropPin's end, once DropPin returned.
func (w *Worker) pinDropped(log *logrus.Entry, p *queue.Pin, reason string, requeued bool, err error) (kept bool) {
	if err != nil && w.q.PinAside(p.Key()) {
		// Asked for again, maybe, and left aside: linked back later.
		w.pinsAside = true
	}
	if err != nil && !requeued {
		w.pinDropError(log, p, "removing a pin given up on", err)
		return false
	}
	if err != nil {
		// Kept, linked back but pins/ not synced (a failing disk):
		// its file stays aside until a later link back is durable.
		log.WithError(err).Warn("syncing a pin asked for again as it was dropped")
	}
	delete(w.pinDropFailed, p.Key())
	if w.state != nil {
		w.state.pinDropsDone(w.q.Dir, func(k string) bool { return k != p.Key() })
	}
	w.pinRemoved()
	delete(w.pins, p.Key())
	delete(w.pinDropRecorded, p.Key())
	if requeued {
		log.WithField("reason", reason).Warn("pin asked for again as it was dropped: queued anew")
		return true
	}
	log.WithField("reason", reason).Warn("pin dropped")
	return false
}

// pinDropError logs why p's drop failed, unless it was the last failure
// logged for p, and backs p off, as a failed call is: its drop is tried
// again after it. The failure goes in state.json, not in p's file, which
// the same failure (tmp/ or pins/ unwritable) may keep from being
// rewritten: there wait counts p failing, where it would wait for it
// forever, and status says why.
func (w *Worker) pinDropError(log *logrus.Entry, p *queue.Pin, msg string, err error) {
	said := msg + ": " + err.Error()
	if w.pinDropFailed[p.Key()] != said {
		w.pinDropFailed[p.Key()] = said
		log.WithError(err).Error(msg)
	}
	now := time.Now()
	n := 1
	if w.state != nil {
		if d, ok := w.state.PinDrops[p.Key()]; ok {
			n = d.Attempts + 1
		}
	}
	p.NextAttempt = now.Add(Backoff(n, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax))
	if w.state != nil {
		w.state.pinDropFailed(w.q.Dir, p.Key(), p.Target, truncate(said, 1000), p.NextAttempt)
	}
}

// pinRemoved calls the test hook onPinRemoved, if set.
func (w *Worker) pinRemoved() {
	if w.onPinRemoved != nil {
		w.onPinRemoved()
	}
}

func (w *Worker) recordPin(p *queue.Pin, outcome, reason string, took time.Duration) {
	pin := strconv.Quote(p.Name)
	if k := p.Keep.String(); k != "" {
		pin += " " + k
	}
	rec := history.Record{Time: time.Now(), Target: p.Target, Path: p.Path, Outcome: outcome, Reason: reason, Duration: took, Pin: pin}
	if err := history.Append(w.q.Dir, history.MaxSize, []history.Record{rec}); err != nil {
		w.log.WithError(err).Error("recording history")
	}
}

// retryPins makes every failing pin due now (retry).
func (w *Worker) retryPins() {
	for _, p := range w.pins {
		if !p.NextAttempt.IsZero() {
			p.NextAttempt = time.Time{}
			if err := w.q.UpdatePin(p); err != nil {
				w.log.WithError(err).Error("updating pin")
			}
		}
	}
}

// newPins reports whether pins/ holds pins this worker has not seen.
func (w *Worker) newPins() bool {
	names, err := w.q.PinNames()
	if err != nil {
		return false
	}
	for _, n := range names {
		_, known := w.pins[n]
		_, bad := w.badPins[n]
		if !known && !bad {
			return true
		}
	}
	return false
}

// pinnedRoots are the roots pins of target wait for, for a job: the rules
// then read their facts as policy.ForPin says.
func (w *Worker) pinnedRoots(target string) map[string]bool {
	var out map[string]bool
	for _, p := range w.pins {
		if p.Target == target {
			if out == nil {
				out = map[string]bool{}
			}
			out[p.Path] = true
		}
	}
	return out
}
