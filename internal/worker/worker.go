// Package worker drains the queue: it batches due entries per target,
// drops paths that can no longer be pushed, calls the target's pusher and
// backs off failed entries, until the queue is empty.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Mode says how long a worker waits for the lock and when it exits.
type Mode int

const (
	// Service waits for the lock and never exits on its own (systemd).
	Service Mode = iota
	// Once waits for the lock and exits when nothing more can be pushed
	// now: the queue is empty, or what is left waits for a retry.
	Once
	// Spawned is the worker the hook starts: it leaves at once if
	// another worker runs, and exits when the queue has been empty for
	// queue.linger.
	Spawned
)

// Timing of the batching. A burst of builds queues paths one by one; the
// worker waits until no new path has come for quiet (or the oldest has
// waited maxGather, or a batch is full) so that the burst goes up in a few
// pusher calls instead of one per build.
const (
	quiet        = 500 * time.Millisecond
	maxGather    = 5 * time.Second
	pollInterval = 100 * time.Millisecond
	// failedTwice: an entry that failed this often is pushed on its own,
	// so one bad path cannot hold back the rest of its batch.
	failedTwice = 2
)

// Worker drains one queue.
type Worker struct {
	cfg     *config.Config
	q       *queue.Queue
	log     *logrus.Logger
	nix     nixstore.Nix
	pushers map[string]pusher.Pusher
	entries map[string]*queue.Entry // cache of entries/, by key
	orphans map[string]bool         // targets already logged as unknown
	state   *State
	facts   factState // what the size, unsubstitutable and upstream rules read
	// arrived is when each cached entry counts as queued, on the
	// monotonic clock (see adopt).
	arrived map[string]time.Time
	// unreadable are entries already logged as unreadable.
	unreadable map[string]bool
	// argBudget bounds the bytes of paths in one pusher call.
	argBudget int
	// records of what was pushed, by target name (see remember).
	records map[string]*pushed.Record
	// watch follows the configuration file (see reload.go); nil keeps
	// the configuration the worker got.
	watch *configWatch
	// newPusher builds a target's pusher, at start and on a reload.
	newPusher func(*config.Config, *config.Target) pusher.Pusher
	started   time.Time
	// roundStarts, when set (by tests), is called as each round of the
	// loop in Run begins: once it has been called twice, the worker has
	// looked at the queue and done what was due at least once, which a
	// test can wait for instead of sleeping.
	roundStarts func()
}

// New prepares a worker; Run does the work.
func New(cfg *config.Config, q *queue.Queue, log *logrus.Logger) *Worker {
	w := &Worker{
		q: q, log: log,
		entries:    map[string]*queue.Entry{},
		arrived:    map[string]time.Time{},
		unreadable: map[string]bool{},
		argBudget:  pusher.ArgBudget(),
		records:    map[string]*pushed.Record{},
		newPusher:  pusher.New,
	}
	w.setConfig(cfg)
	return w
}

// ErrLeft is returned by a Once worker that stopped with entries waiting
// for a retry.
var ErrLeft = errors.New("entries are left in the queue, waiting for a retry")

// Run drains the queue in the given mode.
func (w *Worker) Run(ctx context.Context, mode Mode) error {
	wait := time.Duration(-1)
	if mode == Spawned {
		wait = 2 * time.Second
	}
	lock, err := w.q.AcquireWorker(ctx, wait)
	if err != nil {
		return err
	}
	if lock == nil {
		w.log.Debug("another worker is draining the queue")
		return nil
	}
	defer func() {
		w.closeRecords()
		if lock != nil {
			lock.Unlock()
		}
	}()
	// A worker started from a shell or a unit may have inherited
	// descriptors; the pushers must not keep them.
	if err := fds.CloseOnExec(); err != nil {
		w.log.WithError(err).Warn("cannot keep inherited descriptors from the pushers")
	}
	w.state = LoadState(w.q.Dir)
	w.started = time.Now()
	// status tells the caller's config from the one the worker uses.
	w.saveWorkerInfo("")
	w.q.CleanTmp(time.Hour)
	w.log.WithFields(logrus.Fields{"queue": w.q.Dir, "pid": os.Getpid(), "config": configName(w.cfg.File)}).Info("worker started")

	var idleSince, lastRound time.Time
	for {
		if w.roundStarts != nil {
			w.roundStarts()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		// The configuration first: the scan tells known targets from
		// unknown ones by it, and a retry after a fix must push with
		// the fixed one, so a retry request forces a full check.
		retry := w.q.TakeRetryRequest()
		w.checkConfig(now, retry)
		live := w.scan(now)
		// After the scan, so that a worker that just started knows the
		// entries it is asked to retry.
		if retry {
			w.retryNow()
		}
		batches, next := w.plan(live, now)
		if len(batches) > 0 {
			// Whatever fails without a back-off, rounds of
			// pushes never come faster than this.
			if d := pollInterval - now.Sub(lastRound); !lastRound.IsZero() && d > 0 {
				sleep(ctx, d)
				continue
			}
			lastRound = now
			idleSince = time.Time{}
			w.prefetch(ctx, batches)
			for _, b := range batches {
				// Shutting down: the batches not started yet
				// stay as they are (with a cancelled context,
				// their closures could not be asked of Nix and
				// they would count as failed).
				if ctx.Err() != nil {
					break
				}
				w.push(ctx, b)
			}
			continue
		}
		if len(live) > 0 {
			if mode == Once && allWaiting(live, now) {
				return fmt.Errorf("%d %w", len(live), ErrLeft)
			}
			idleSince = time.Time{}
			sleep(ctx, min(time.Until(next), time.Second))
			continue
		}
		if mode == Service {
			sleep(ctx, time.Second)
			continue
		}
		if idleSince.IsZero() {
			idleSince = now
		}
		if mode == Spawned && now.Sub(idleSince) < w.cfg.Queue.Linger {
			sleep(ctx, pollInterval)
			continue
		}
		// Release, then look once more: a hook that queued a path
		// after our last look but found the lock taken counts on us.
		lock.Unlock()
		lock = nil
		if !w.newEntries() {
			w.log.Info("nothing left to push, worker exiting")
			return nil
		}
		if lock, err = w.q.AcquireWorker(ctx, 0); err != nil || lock == nil {
			return err
		}
		idleSince = time.Time{}
	}
}

func allWaiting(live []*queue.Entry, now time.Time) bool {
	for _, e := range live {
		if !e.NextAttempt.After(now) {
			return false
		}
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// newEntries reports whether entries/ holds entries this worker has not
// seen. Entries it has seen and left (of targets no longer configured) do
// not keep it running.
func (w *Worker) newEntries() bool {
	names, err := w.q.Names()
	if err != nil {
		return false
	}
	for _, n := range names {
		if _, ok := w.entries[n]; !ok {
			return true
		}
	}
	return false
}

// scan refreshes the cache of entries from the directory (reading only
// new files, which it adopts at now) and returns the entries whose target
// is configured.
func (w *Worker) scan(now time.Time) []*queue.Entry {
	names, err := w.q.Names()
	if err != nil {
		w.log.WithError(err).Error("listing queue")
		return nil
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		seen[n] = true
		if _, ok := w.entries[n]; ok {
			continue
		}
		e, err := w.q.Read(n)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !w.unreadable[n] {
				w.unreadable[n] = true
				w.log.WithError(err).Error("unreadable queue entry")
			}
			continue
		}
		w.adopt(n, e, now)
		w.entries[n] = e
	}
	for n := range w.arrived {
		if !seen[n] {
			delete(w.arrived, n)
		}
	}
	var live []*queue.Entry
	for n, e := range w.entries {
		if !seen[n] {
			delete(w.entries, n)
			continue
		}
		if w.cfg.Target(e.Target) == nil {
			if !w.orphans[e.Target] {
				w.orphans[e.Target] = true
				w.log.WithField("target", e.Target).Warn("entries for a target that is no longer configured stay in the queue")
			}
			continue
		}
		live = append(live, e)
	}
	return live
}

// batch is up to queue.batch entries of one target.
type batch struct {
	target  *config.Target
	entries []*queue.Entry
}

// plan picks the batches to push now. It returns none while a burst is
// still arriving, and the time of the next retry when everything waits.
func (w *Worker) plan(live []*queue.Entry, now time.Time) ([]batch, time.Time) {
	var due []*queue.Entry
	var next, newest, oldest time.Time
	for _, e := range live {
		if e.NextAttempt.After(now) {
			if next.IsZero() || e.NextAttempt.Before(next) {
				next = e.NextAttempt
			}
			continue
		}
		due = append(due, e)
		if e.Attempts == 0 {
			if a := w.arrival(e, now); a.After(newest) {
				newest = a
			}
			if a := w.arrival(e, now); oldest.IsZero() || a.Before(oldest) {
				oldest = a
			}
		}
	}
	if len(due) == 0 {
		return nil, next
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Queued.Before(due[j].Queued) })
	byTarget := map[string][]*queue.Entry{}
	full := false
	for _, e := range due {
		byTarget[e.Target] = append(byTarget[e.Target], e)
		full = full || len(byTarget[e.Target]) >= w.cfg.Queue.Batch
	}
	gathering := !newest.IsZero() && now.Sub(newest) < quiet && now.Sub(oldest) < maxGather
	if gathering && !full {
		return nil, now.Add(pollInterval)
	}
	var batches []batch
	for _, t := range w.cfg.Targets {
		var fresh []*queue.Entry
		failing := map[int][]*queue.Entry{}
		for _, e := range byTarget[t.Name] {
			if e.Attempts >= failedTwice {
				failing[e.Attempts] = append(failing[e.Attempts], e)
			} else {
				fresh = append(fresh, e)
			}
		}
		// A batch that failed twice is halved, and so is each half that
		// fails again (its entries share their attempts and back-off):
		// one bad path among 10,000 is found in some 14 rounds, while
		// the halves without it go up, instead of 10,000 single pushes.
		attempts := make([]int, 0, len(failing))
		for n := range failing {
			attempts = append(attempts, n)
		}
		sort.Ints(attempts)
		for _, n := range attempts {
			es := failing[n]
			batches = append(batches, w.chunk(t, es, (len(es)+1)/2)...)
		}
		batches = append(batches, w.chunk(t, fresh, w.cfg.Queue.Batch)...)
	}
	return batches, next
}

// chunk cuts entries into batches of at most size entries whose paths fit
// in one pusher call's argv.
func (w *Worker) chunk(t *config.Target, entries []*queue.Entry, size int) []batch {
	budget := w.argBudget
	if budget <= 0 {
		budget = pusher.ArgBudget()
	}
	var out []batch
	var cur []*queue.Entry
	bytes := 0
	for _, e := range entries {
		c := pusher.ArgCost(e.Path)
		if len(cur) > 0 && (len(cur) >= size || bytes+c > budget) {
			out = append(out, batch{t, cur})
			cur, bytes = nil, 0
		}
		cur = append(cur, e)
		bytes += c
	}
	if len(cur) > 0 {
		out = append(out, batch{t, cur})
	}
	return out
}

func (w *Worker) retryNow() {
	n := 0
	for _, e := range w.entries {
		if !e.NextAttempt.IsZero() {
			e.NextAttempt = time.Time{}
			if err := w.q.Update(e); err != nil {
				w.log.WithError(err).Error("updating queue entry")
			}
			n++
		}
	}
	w.log.WithField("entries", n).Info("retry requested: failing entries are due now")
}

// push pushes one batch, after leaving out what can no longer or must not
// be pushed.
func (w *Worker) push(ctx context.Context, b batch) {
	log := w.log.WithField("target", b.target.Name)
	var send []*queue.Entry
	cl := w.batchClosures(ctx, b.target, b.entries)
	if ctx.Err() != nil {
		// Cut short by shutdown, not a failure of the entries.
		return
	}
	for _, e := range b.entries {
		reason, upstream, err := w.decide(b.target, e, cl, log)
		if err != nil {
			w.queueFailed(log, e, "not pushed", err, time.Now())
			continue
		}
		if upstream {
			w.inUpstream(log, b.target, e, reason)
			continue
		}
		if reason != "" {
			log.WithFields(logrus.Fields{"path": e.Path, "reason": reason}).Warn("dropped")
			if err := w.q.Drop(e, reason); err != nil {
				w.queueFailed(log, e, "dropping the queue entry failed", err, time.Now())
				continue
			}
			w.record(b.target.Name, []*queue.Entry{e}, history.Dropped, reason, 0)
			delete(w.entries, e.Key())
			continue
		}
		send = append(send, e)
	}
	if len(send) == 0 {
		return
	}
	paths := make([]string, len(send))
	for i, e := range send {
		paths[i] = e.Path
	}
	start := time.Now()
	// The output is summed up in the batch's one line; each line of it
	// (one per path, from nix copy and cachix) only at debug level.
	out := pusher.NewSummary(storepath.StoreDir())
	if log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		out.Line = func(line string) { log.Debug(line) }
	}
	err := w.factsFailed(b.target)
	if err == nil {
		err = w.pushers[b.target.Name].Push(ctx, paths, out)
	}
	out.Flush()
	took := time.Since(start)
	fields := logrus.Fields{"paths": len(paths), "duration": took.Round(time.Millisecond).String()}
	if text := out.Text(); text != "" {
		fields["output"] = text
	}
	if n := out.Lines(); n > 0 {
		fields["output_lines"] = n
	}
	if err == nil {
		log.WithFields(fields).Info("pushed")
		w.record(b.target.Name, send, history.Pushed, "", took)
		removed := 0
		for _, e := range send {
			if err := w.q.Remove(e); err != nil {
				// Kept, and backed off: pushing it again is
				// harmless, trying again at once would spin.
				w.queueFailed(log, e, "pushed, but removing the queue entry failed", err, time.Now())
				continue
			}
			removed++
			delete(w.entries, e.Key())
		}
		w.remember(log, b.target, send)
		w.state.pushed(w.q.Dir, b.target.Name, len(send), time.Now(), removed == len(send))
		return
	}
	if ctx.Err() != nil {
		// Shutting down: the push was cut short, not failed.
		return
	}
	now := time.Now()
	// One back-off for the whole batch, so that it is retried as a batch
	// (and split only after failing twice) instead of being scattered
	// into single-path pushes by per-entry jitter.
	attempts := 0
	for _, e := range send {
		attempts = max(attempts, e.Attempts+1)
	}
	next := now.Add(Backoff(attempts, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax))
	for _, e := range send {
		e.Attempts++
		e.LastAttempt = now
		e.LastError = truncate(err.Error(), 1000)
		e.NextAttempt = next
		// On failure the back-off still holds, in memory.
		if err := w.q.Update(e); err != nil {
			log.WithError(err).Error("updating queue entry")
			w.state.queueError(w.q.Dir, b.target.Name, truncate("updating the queue entry failed: "+err.Error(), 1000), now)
		}
	}
	fields["error"] = err.Error()
	fields["retry_in"] = time.Until(send[0].NextAttempt).Round(time.Second).String()
	log.WithFields(fields).Warn("push failed")
	w.record(b.target.Name, send, history.Failed, send[0].LastError, took)
	w.state.failed(w.q.Dir, b.target.Name, now)
}

// Backoff is the delay before attempt n+1 after n failures: doubling from
// initial up to max, with jitter so that many failed entries do not retry
// in lockstep.
func Backoff(n int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		if d > max/2 {
			d = max // doubling would pass max, or overflow
			break
		}
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1)
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
