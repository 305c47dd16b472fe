package worker

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// finish makes a job's outcome durable, in bulk (issue 22: entries were
// removed, dropped and backed off one file at a time): one Apply for its
// entries, one append to the history, one line in the log for the push
// (and one per kind of drop).
func (w *Worker) finish(res *result) {
	j := res.job
	name := j.target.Name
	w.running[name] = slices.DeleteFunc(w.running[name], func(x *job) bool { return x == j })
	x := w.idx
	defer func() {
		for _, e := range j.entries {
			if s := x.slots[e.Key()]; s != nil {
				s.busy = false
			}
		}
	}()
	if len(res.upstreams.Asked) > 0 {
		w.state.upstreams(w.q.Dir, res.upstreams.Asked, res.upstreams.Slow, time.Now())
	}
	// Reloaded after the job's own look (during the Load, or before a
	// result waiting here was taken) and nothing sent: decided again,
	// as one the job found reloaded. A pusher call started ends as it
	// began, with the rest of its batch.
	if !res.cut && j.cfg != w.cfg && len(res.pushed)+len(res.failed) == 0 {
		res.cut, res.reloaded = true, true
	}
	if res.cut {
		if res.reloaded {
			w.log.WithFields(logrus.Fields{"target": name, "paths": len(j.entries)}).
				Info("the configuration changed while the batch was decided: it is decided again with the new one")
		}
		return
	}
	log := w.log.WithField("target", name)
	now := time.Now()
	if len(res.pushed) > 0 {
		if w.pace[name] == nil {
			w.pace[name] = &pace{}
		}
		w.pace[name].add(res.took, now)
	}
	// Where each entry lives now: another job's Apply may have replaced
	// its bulk file meanwhile.
	for _, e := range j.entries {
		if s := x.slots[e.Key()]; s != nil {
			e.SetSource(x.srcName(s))
		}
	}
	// An entry the rules drop while a copy of it is held (queued by a
	// list past queue.MaxListed, or while it was busy) is not dropped
	// yet: the copy, adopted by the next scan, decides the pair by its
	// own lists and may push it. A drop record now would say the path
	// was dropped though it then goes up (and wait would believe it).
	// A new slice, not DeleteFunc: res.dropped may share its array with
	// the job's entries, which the deferred loop above still reads.
	var superseded, dropped []*queue.Entry
	for _, e := range res.dropped {
		if s := x.slots[e.Key()]; s != nil && s.held {
			superseded = append(superseded, e)
			log.WithFields(logrus.Fields{"path": e.Path, "reason": e.Reason}).Info("not dropped: a copy queued again decides it")
			continue
		}
		dropped = append(dropped, e)
		res.notes.add(logrus.WarnLevel, "dropped", "reason", e.Reason, e.Path)
	}
	res.dropped = dropped
	res.notes.flush()
	ch := queue.Changes{Done: append(append(slices.Clone(res.pushed), res.upstream...), superseded...), Dropped: res.dropped}
	// Back-offs by the configuration in use now, not the job's: a
	// reload while it ran cut the back-offs set before it to its
	// queue.retry_max (capBackoffs), and holds for those set after.
	retry := w.cfg.Queue
	// A failed push backs off as one batch, so that it is retried as a
	// batch (and split only after failing twice) instead of being
	// scattered into single-path pushes by per-entry jitter; so does a
	// batch Nix could not decide, which would otherwise come back as
	// many small ones, each a query and a pusher call.
	if len(res.failed) > 0 {
		msg := truncate(res.err.Error(), 1000)
		ch.Updated = backOffTogether(ch.Updated, res.failed, now, retry, func(*queue.Entry) string { return msg })
	}
	if len(res.undecided) > 0 {
		es := make([]*queue.Entry, 0, len(res.undecided))
		for e := range res.undecided {
			es = append(es, e)
		}
		ch.Updated = backOffTogether(ch.Updated, es, now, retry, func(e *queue.Entry) string { return truncate(res.undecided[e].Error(), 1000) })
	}
	// Bulk files all of whose entries leave now go without being read.
	leaving := map[uint32]int{}
	for _, es := range [][]*queue.Entry{ch.Done, ch.Dropped, ch.Updated} {
		for _, e := range es {
			if s := x.slots[e.Key()]; s != nil && s.src != 0 {
				leaving[s.src]++
			}
		}
	}
	for id, n := range leaving {
		if b := x.bulk[id]; b != nil && b.n == n && !b.unread {
			if ch.Whole == nil {
				ch.Whole = map[string]bool{}
			}
			ch.Whole[b.name] = true
		}
	}
	// The history and the record of pushed paths first: a wait that sees
	// an entry leave the queue (it is woken as it does) then finds its
	// outcome there, and says it. A crash in between leaves the entries
	// queued, to be pushed and recorded again: a second record, nothing
	// lost.
	// The two files at once: for a batch of 10,000 each took about as
	// long as the other, and the time between the pusher's end and the
	// entries leaving is the drain's too.
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { w.record(name, res) })
	if len(res.pushed) > 0 {
		w.remember(log, j.target, res.pushed)
	}
	wg.Wait()
	recorded := time.Since(start)
	// A pair pushed is no longer one given up on: its earlier drop goes
	// before its entry does, or a pin of it queued later, with no entry,
	// would be dropped with that old reason (see doPins).
	w.forgetDrops(log, res.pushed)
	start = time.Now()
	ap := w.q.Apply(ch)
	written := time.Since(start)
	x.replaced(ap.Replaced)
	if ap.Aside > 0 {
		log.WithField("lines", ap.Aside).Error("lines of a bulk file that are not queue entries were moved to corrupt/")
	}
	// The index follows: what left the queue is forgotten, what was
	// updated gets its new state (in memory even if writing it failed).
	for _, e := range ch.Updated {
		s := x.slots[e.Key()]
		if s == nil {
			continue
		}
		s.attempts = uint16(min(e.Attempts, 1<<16-1))
		s.next, s.half = w.mono(e.NextAttempt), false
		if _, bad := ap.Failed[e.Key()]; !bad {
			x.move(s, w.srcID(e.Source()))
		}
	}
	removalFailed := false
	for _, part := range []struct {
		es      []*queue.Entry
		outcome string // history.Pushed, Upstream or Dropped
		what    string
	}{
		{res.pushed, history.Pushed, "pushed, but removing the queue entry failed"},
		{res.upstream, history.Upstream, "not pushed (already upstream), but removing the queue entry failed"},
		{res.dropped, history.Dropped, "dropping the queue entry failed"},
		{superseded, "", "removing the queue entry its copy decides failed"},
	} {
		for _, e := range part.es {
			if err, bad := ap.Failed[e.Key()]; bad {
				removalFailed = true
				w.queueFailed(log, e, part.what, err, now)
				continue
			}
			s := x.slots[e.Key()]
			held := s != nil && s.held
			if held && part.outcome == history.Pushed {
				// Up: the copy held meanwhile is this pair. Not one
				// left upstream: its copy may say pinned, which the
				// batch did not know, and a pinned root goes up
				// whatever upstream says.
				if x.sent == nil {
					x.sent = map[string]sentMark{}
				}
				x.sent[e.Key()] = sentMark{upTo: x.next, file: w.entryFile(e.Key()), queued: w.entryQueued(e.Key())}
			}
			x.remove(e.Key())
			switch part.outcome {
			case history.Dropped:
				w.state.dropped(name, res.kinds[e.Key()])
				w.metrics.stale = true
				// Not its pins' drop while a copy is held: that
				// copy, maybe pinned, is decided next.
				if !held {
					w.rootDecided(e, e.Pinned, e.Reason)
				}
			case history.Pushed:
				w.rootDecided(e, e.Pinned, "")
			}
		}
	}
	if len(res.failed) > 0 {
		if err, bad := ap.Failed[res.failed[0].Key()]; bad {
			log.WithError(err).Error("updating queue entries")
			w.state.queueError(w.q.Dir, name, truncate("updating the queue entries failed: "+err.Error(), 1000), now)
		}
	}
	if len(res.pushed)+len(res.failed) > 0 {
		f := res.summary()
		if lists := listsOf(w.cfg, name, append(res.pushed[:len(res.pushed):len(res.pushed)], res.failed...)); len(lists) > 0 {
			f["listed_in"] = strings.Join(lists, " ")
		}
		if written >= time.Millisecond {
			f["written"] = written.Round(time.Millisecond).String()
		}
		if recorded >= time.Millisecond {
			f["recorded"] = recorded.Round(time.Millisecond).String()
		}
		if res.err == nil {
			log.WithFields(f).Info("pushed")
		} else {
			f["error"] = res.err.Error()
			f["retry_in"] = time.Until(res.failed[0].NextAttempt).Round(time.Second).String()
			log.WithFields(f).Warn("push failed")
		}
	}
	if len(res.pushed)+len(res.failed) > 0 {
		w.state.took(name, res.took) // saved with the call's outcome
	}
	if len(res.pushed) > 0 {
		w.state.pushed(w.q.Dir, name, len(res.pushed), time.Now(), !removalFailed)
	} else if res.err != nil {
		w.state.failed(w.q.Dir, name, now)
	}
}

// forgetDrops removes from dropped/ the drops of pairs now pushed. A
// small batch (a build's) tries an unlink for each pair, a few
// microseconds each; a larger one lists dropped/ once rather than trying
// 10,000 removals. Listing it for every batch cost each push about 14 ms
// and 1.5 MB with 10,000 drops there (BenchmarkForgetDrops), and a mass
// drop keeps more than queue.dropped_max there for pruneGrace.
func (w *Worker) forgetDrops(log *logrus.Entry, pushed []*queue.Entry) {
	if len(pushed) == 0 {
		return
	}
	if len(pushed) <= forgetEach {
		for _, e := range pushed {
			removed, err := w.q.ForgetDrop(e.Key())
			if err != nil {
				log.WithError(err).WithField("path", e.Path).Warn("removing the earlier drop of a path pushed")
			}
			if removed {
				w.metrics.stale = true
			}
		}
		return
	}
	names, err := w.q.DroppedNames()
	if err != nil {
		log.WithError(err).Warn("listing dropped entries")
		return
	}
	if len(names) == 0 {
		return
	}
	dropped := make(map[string]bool, len(names))
	for _, n := range names {
		dropped[n] = true
	}
	for _, e := range pushed {
		if !dropped[e.Key()] {
			continue
		}
		if err := w.q.RemoveDropped(e); err != nil {
			log.WithError(err).WithField("path", e.Path).Warn("removing the earlier drop of a path pushed")
			continue
		}
		w.metrics.stale = true
	}
}

// forgetEach is the largest batch forgetDrops tries a removal for each
// path of: past it, one listing of dropped/ (bounded by
// queue.dropped_max, once pruned) costs less.
const forgetEach = 64

// srcID is the index's id for a bulk file Apply wrote (0: entries/).
func (w *Worker) srcID(name string) uint32 {
	if name == "" {
		return 0
	}
	if id, ok := w.idx.ids[name]; ok {
		return id
	}
	return w.idx.addBulk(name)
}

// queueFailed backs off an entry the worker could not drop or remove, as
// if its push had failed, so that a queue directory that refuses changes
// makes the worker retry slowly instead of in a loop. The back-off lives
// in memory; writing it would likely fail too.
func (w *Worker) queueFailed(log *logrus.Entry, e *queue.Entry, what string, err error, now time.Time) {
	s := w.idx.slots[e.Key()]
	if s == nil {
		return
	}
	s.attempts++
	d := Backoff(int(s.attempts), w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax)
	s.next = w.mono(now.Add(d))
	msg := truncate(what+": "+err.Error(), 1000)
	log.WithError(err).WithFields(logrus.Fields{"path": e.Path, "retry_in": d.Round(time.Second).String()}).Error(what)
	w.state.queueError(w.q.Dir, e.Target, msg, now)
}

// record appends the outcome of a job's entries to the queue's history
// (see `cachix-filter-hook log`), in one write. A failure to write it is
// logged, not fatal: the queue, not the history, is what must not lose a
// path.
func (w *Worker) record(target string, res *result) {
	now := time.Now()
	recs := make([]history.Record, 0, len(res.pushed)+len(res.failed)+len(res.dropped)+len(res.upstream))
	add := func(es []*queue.Entry, outcome string, reason func(*queue.Entry) string, batch int, took time.Duration) {
		for _, e := range es {
			recs = append(recs, history.Record{Time: now, Target: target, Path: e.Path, Outcome: outcome, Reason: reason(e), Batch: batch, Duration: took, Listed: listedBy(w.cfg, target, e)})
		}
	}
	reason := func(e *queue.Entry) string { return res.reasons[e.Key()] }
	// What a pushed path uploaded inside its closure shares the budget
	// too: under closure_deny = "push" every path of a big batch may say
	// it.
	also := 0
	for _, e := range res.pushed {
		if reason(e) != "" {
			also++
		}
	}
	share := max(minReason, reasonBudget/max(1, also+len(res.failed)+len(res.dropped)+len(res.upstream)))
	add(res.pushed, history.Pushed, sharedReasons(res.pushed, share, reason), len(res.pushed), res.took)
	add(res.failed, history.Failed, sharedReasons(res.failed, share, func(e *queue.Entry) string { return e.LastError }), len(res.failed), res.took)
	add(res.dropped, history.Dropped, sharedReasons(res.dropped, share, func(e *queue.Entry) string { return e.Reason }), 0, 0)
	add(res.upstream, history.Upstream, sharedReasons(res.upstream, share, reason), 0, 0)
	if len(recs) == 0 {
		return
	}
	if err := history.Append(w.q.Dir, history.MaxSize, recs); err != nil {
		w.log.WithError(err).Error("recording history")
	}
}

// reasonBudget is about how many bytes of reasons (the pusher's error,
// why a path was dropped or left out) the records of one job hold
// together, beyond the newest record's of each kind. Each path of a
// failed batch has the same error: 10,000 paths of a 1,000-byte error
// passed the history's bound in one append, rotating every earlier record
// away (and again at every retry); 10,000 drops of a long closure_deny
// reason did the same.
const (
	reasonBudget = history.MaxSize / 4
	minReason    = 100
)

// sharedReasons gives the last of es its whole reason (readers such as
// status look at the newest records first) and the others theirs cut to
// share bytes: the worker's log has the error whole too, and dropped/
// each drop's reason. A reason that says the path was lost stays whole
// (it is short): wait tells lost paths from those the rules left out by
// it. The denied path a pushed path's closure uploaded is never cut
// (no longer than a record's own path): `log --path` finds it there.
func sharedReasons(es []*queue.Entry, share int, reason func(*queue.Entry) string) func(*queue.Entry) string {
	if len(es) < 2 {
		return reason
	}
	last := es[len(es)-1]
	return func(e *queue.Entry) string {
		r := reason(e)
		if e == last || Lost(r) {
			return r
		}
		if dep := AlsoUploaded(r); dep != "" {
			return truncate(r, max(share, len(alsoUploaded)+len(dep)+1))
		}
		return truncate(r, share)
	}
}

// backOffTogether gives es one next attempt, by the most attempts among
// them, each its own error (why), and appends them to updated.
func backOffTogether(updated, es []*queue.Entry, now time.Time, retry config.Queue, why func(*queue.Entry) string) []*queue.Entry {
	attempts := 0
	for _, e := range es {
		attempts = max(attempts, e.Attempts+1)
	}
	next := now.Add(Backoff(attempts, retry.RetryInitial, retry.RetryMax))
	for _, e := range es {
		e.Attempts++
		e.LastAttempt, e.LastError, e.NextAttempt = now, why(e), next
	}
	return append(updated, es...)
}
