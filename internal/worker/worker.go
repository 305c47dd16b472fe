// Package worker drains the queue: it batches due entries per target,
// drops paths that can no longer be pushed, calls the target's pusher and
// backs off failed entries, until the queue is empty.
package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
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

// pollInterval is how often the worker looks for new entries while it
// has something to do (the directories' times make a look cheap).
const pollInterval = 100 * time.Millisecond

// Worker drains one queue.
type Worker struct {
	cfg *config.Config
	// live is cfg, for the jobs' goroutines: a job whose configuration
	// is no longer it by the time it would push is decided again.
	live    atomic.Pointer[config.Config]
	q       *queue.Queue
	log     *logrus.Logger
	nix     nixstore.Nix
	pushers map[string]pusher.Pusher
	idx     *index
	orphans map[string]bool // targets already logged as unknown
	state   *State
	facts   *factState // what the size, unsubstitutable and upstream rules read
	// unreadable are entries already logged as unreadable.
	unreadable map[string]bool
	// unreadableOver is how many more were last logged, as a count.
	unreadableOver int
	// argBudget bounds the bytes of paths in one pusher call.
	argBudget int
	// records of what was pushed, by destination (Target.RecordKey; see
	// remember).
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
	// jobStarts, when set (by tests), is called as a round starts a
	// job: before the round ends, where the push itself starts later.
	jobStarts func()
	// lingers, when set (by tests), is called as a spawned worker with
	// nothing to do starts to wait: the round's writes are all done.
	lingers func()
	// released, when set (by tests), is called after a spawned worker
	// lets go of the lock, before its last look.
	released func()
	// onPinRemoved, when set (by tests), is called as soon as a pin's
	// file is removed.
	onPinRemoved func()
	// beforePinUpdate, when set (by tests), is called in pinDone right
	// before a failed pin's file is rewritten.
	beforePinUpdate func()
	// beforePinDrop, when set (by tests), is called in dropPin right
	// before the file of a pin given up on is removed.
	beforePinDrop func()
	// pinReadFails, when set (by tests), gives scanPins the error of a
	// pin's read, as EIO or EMFILE would (nil: read it).
	pinReadFails func(name string) error
	pruned       time.Time // when dropped/ and corrupt/ were last pruned
	// pruneFailed is the last prune error logged: a file that can never
	// be removed fails every prune, and is said once.
	pruneFailed string
	// running are the jobs being pushed, by target; their results come
	// back on results.
	running map[string][]*job
	results chan *result
	// sessions wakes the worker when a Nix process it waits for ends.
	sessions *sessionWatch
	// builds tells what those processes still build; pace, by target,
	// what its pusher calls took (see plan.go).
	builds *builds
	pace   map[string]*pace
	// idlePoll is how often a lingering worker looks when nothing
	// wakes it (pollInterval; a test makes it long).
	idlePoll time.Duration
	// changes receives when an entry comes or goes (Queue.Notify): a
	// path queued while a push runs is looked at as it comes, not at the
	// next poll.
	changes <-chan struct{}
	// metrics is what was last written to metrics.file.
	metrics metricsFile
	// pins caches pins/ by file name (see pins.go); badPins are those
	// already logged as unreadable, true for those that are not pins
	// (queue.ErrCorrupt). newPinner makes a target's pinner.
	pins      map[string]*queue.Pin
	badPins   map[string]bool
	newPinner func(*config.Target) (pusher.Pinner, error)
	// readList reads a package list the hook could not (unreadLists):
	// pkglist.Read, or a test's.
	readList func(storepath.Path) (*pkglist.List, error)

	// pinDropRecorded are the pins given up on whose outcome is in the
	// history already, while their files stay (see dropPin).
	pinDropRecorded map[string]bool
	// listTries is the retry state of the package lists read again
	// whose read failed, kept here as well as in lists/: a record that
	// cannot be rewritten (a full disk) was read again every
	// retry_initial with its old count, and never dropped.
	listTries map[string]queue.UnreadList
	// pinDropFailed are the pins whose drop failed, with the error
	// logged: a drop is tried every round, a second apart, and a
	// failure is logged again only when it changes (see dropPin).
	pinDropFailed map[string]string
	// pinMade are the pins made whose files could not be removed: only
	// their removal is tried again (see pin).
	pinMade map[string]bool
	// pinsFailed and pinAsksFailed are the last errors listing pins/
	// and pinasks/ logged (see scanPins, pinAsks).
	pinsFailed, pinAsksFailed string
	// listsFailed is the last error listing lists/, or reading a
	// record there for a reason of the moment: logged once, not every
	// round (see unreadLists).
	listsFailed string
	// pinsAside says that pins asked for again may be aside in tmp/,
	// where a drop that could not link them back left them (see
	// doPins): true at first, for what CleanTmp could not link back.
	pinsAside bool
	// pinsAsideFailed is the last error of looking for them, logged
	// once; pinsAsideTries counts those in a row, and the next look
	// is not before pinsAsideNext (a back-off, as for a failed call).
	pinsAsideFailed string
	pinsAsideTries  int
	pinsAsideNext   time.Time
	// rootOutcomes are, by entry key, how this worker last decided the
	// roots pins wait for: the reason of a drop, or "" for a push (see
	// rootDecided), forgotten once no pin names the root (scanPins).
	rootOutcomes map[string]string
	// pinning are the pin calls running, one per target at most: the
	// key of its pin by target. Their results come back on pinResults.
	pinning    map[string]string
	pinResults chan *pinResult
	// pinTimeout bounds a pin call (pinTimeout; a test makes it short).
	pinTimeout time.Duration
	// pinInfos is what the pin's closure rule asks Nix through; nil:
	// the worker's session (w.facts.nix). Tests set it.
	pinInfos nixstore.Infos
}

// New prepares a worker; Run does the work.
func New(cfg *config.Config, q *queue.Queue, log *logrus.Logger) *Worker {
	w := &Worker{
		q: q, log: log,
		idx:        newIndex(),
		unreadable: map[string]bool{},
		argBudget:  pusher.ArgBudget(),
		records:    map[string]*pushed.Record{},
		newPusher:  pusher.New,
		readList:   pkglist.Read,
		started:    time.Now(),
		running:    map[string][]*job{},
		pace:       map[string]*pace{},
		results:    make(chan *result, 16),
		pins:       map[string]*queue.Pin{},
		badPins:    map[string]bool{},
		idlePoll:   pollInterval,
	}
	w.pinsAside = true
	w.pinDropRecorded = map[string]bool{}
	w.pinDropFailed = map[string]string{}
	w.listTries = map[string]queue.UnreadList{}
	w.pinMade = map[string]bool{}
	w.rootOutcomes = map[string]string{}
	w.pinning = map[string]string{}
	w.pinResults = make(chan *pinResult, 4)
	w.pinTimeout = pinTimeout
	w.newPinner = func(t *config.Target) (pusher.Pinner, error) { return pusher.NewPinner(w.cfg, t) }
	w.builds = newBuilds(func(ctx context.Context, paths []string) (map[string]bool, error) {
		infos, err := w.facts.nix.PathInfos(ctx, false, paths...)
		ok := make(map[string]bool, len(infos))
		for p, info := range infos {
			ok[p] = info.Valid
		}
		return ok, err
	})
	w.setConfig(cfg)
	return w
}

// probeWait is how long a spawned worker waits for the lock while only
// probes (hooks, status, wait, doctor: a shared lock for microseconds)
// are in its way; another worker's lock sends it away at once.
const probeWait = 2 * time.Second

// ErrLeft is returned by a Once worker that stopped with entries or pins
// waiting for a retry.
var ErrLeft = errors.New("are left in the queue, waiting for a retry")

// Run drains the queue in the given mode.
func (w *Worker) Run(ctx context.Context, mode Mode) error {
	wait := time.Duration(-1)
	if mode == Spawned {
		wait = probeWait
	}
	lock, err := w.q.AcquireWorker(ctx, wait)
	if err != nil {
		return err
	}
	if lock == nil {
		w.log.Debug("another worker is draining the queue")
		return nil
	}
	w.sessions = newSessionWatch()
	changes, stopChanges := w.q.Notify()
	w.changes = changes
	defer func() {
		stopChanges()
		w.sessions.close()
		// Pushes still running end with ctx; their entries stay as
		// they were.
		w.drain()
		w.closeRecords()
		if w.facts != nil {
			w.facts.nix.Shut()
		}
		// The last word, while the lock is held: no worker runs (a
		// SIGKILL leaves the file saying one does: node exporter's
		// node_textfile_mtime_seconds then tells its age).
		if w.state != nil && lock != nil {
			w.writeMetrics(time.Now(), false)
		}
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
	// status tells the caller's config from the one the worker uses.
	w.saveWorkerInfo("")
	w.q.CleanTmp(time.Hour)
	cleanStateTmp(w.q.Dir, time.Hour)
	w.log.WithFields(logrus.Fields{"queue": w.q.Dir, "pid": os.Getpid(), "config": configName(w.cfg.File)}).Info("worker started")

	var idleSince time.Time
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
		if now.Sub(w.pruned) >= pruneEvery {
			w.prune(now)
		}
		// Before the scan, which then sees what they queued.
		listsLeft, listNext := w.unreadLists(now)
		w.scan(now)
		// After the scan, so that a worker that just started knows the
		// entries it is asked to retry.
		if retry {
			w.retryNow()
			w.scanPins()
			w.retryPins()
		}
		// Before this round's jobs: a pin waits for a round in which
		// its root's entry is gone.
		pinsLeft, pinNext := w.doPins(ctx, now)
		r := w.plan(now)
		w.writeMetrics(now, true)
		for _, j := range r.jobs {
			if w.jobStarts != nil {
				w.jobStarts()
			}
			go func() { w.results <- j.run(ctx, w.log.WithField("target", j.target.Name)) }()
		}
		w.sessions.watch(r.watch)
		if w.busy() {
			idleSince = time.Time{}
			w.await(ctx, pollInterval)
			continue
		}
		if r.live > 0 || pinsLeft || listsLeft {
			if r.live > 0 && r.next.IsZero() {
				// Due, but gone when read: look again.
				sleep(ctx, time.Millisecond)
				continue
			}
			// A pin due now (kept as it was dropped) is decided
			// next round, not left for a retry.
			pinDue := pinsLeft && !pinNext.IsZero() && !pinNext.After(now)
			if mode == Once && !r.resting && !pinDue {
				// Nothing started: what is left waits for a
				// back-off (a pin, for its root's entry or its own).
				// A rest is short: the worker waits for it.
				if r.live == 0 && !pinsLeft {
					return fmt.Errorf("package lists to read again %w", ErrLeft)
				}
				if r.live == 0 {
					// Pins alone: "0 entries" would say nothing is.
					return fmt.Errorf("pins %w", ErrLeft)
				}
				return fmt.Errorf("%d entries %w", r.live, ErrLeft)
			}
			next := r.next
			if pinsLeft && !pinNext.IsZero() && (next.IsZero() || pinNext.Before(next)) {
				next = pinNext
			}
			if listsLeft && !listNext.IsZero() && (next.IsZero() || listNext.Before(next)) {
				next = listNext
			}
			wait := time.Second
			if !next.IsZero() {
				wait = min(time.Until(next), time.Second)
			}
			idleSince = time.Time{}
			w.await(ctx, wait)
			continue
		}
		if mode == Service {
			w.await(ctx, time.Second)
			continue
		}
		if idleSince.IsZero() {
			idleSince = now
		}
		if left := w.cfg.Queue.Linger - now.Sub(idleSince); mode == Spawned && left > 0 {
			// Woken by the queue, as a busy worker is: a path queued
			// while the worker lingers goes at once, not at the next
			// look.
			if w.lingers != nil {
				w.lingers()
			}
			w.await(ctx, min(w.idlePoll, left))
			continue
		}
		// Release, then look once more: a hook that queued a path
		// after our last look but found the lock taken counts on us.
		// The metrics say no worker runs before the lock goes: the
		// next worker's first round says it does.
		w.writeMetrics(time.Now(), false)
		lock.Unlock()
		lock = nil
		if w.released != nil {
			w.released()
		}
		if !w.newEntries() && !w.newPins() && !w.newLists() {
			w.log.Info("nothing left to push, worker exiting")
			return nil
		}
		// Waiting out probes, as at the start: status, wait or doctor
		// probing the lock at this instant would otherwise send this
		// worker away with the new entries queued and no worker.
		if lock, err = w.q.AcquireWorker(ctx, probeWait); err != nil || lock == nil {
			return err
		}
		idleSince = time.Time{}
	}
}

// pruneEvery is how often the worker bounds dropped/ and corrupt/.
const pruneEvery = 10 * time.Minute

// prune bounds dropped/ and corrupt/ by queue.dropped_max and
// queue.dropped_max_age.
func (w *Worker) prune(now time.Time) {
	w.pruned = now
	// The worker's own start and monotonic run time bound the ages: a
	// clock stepped forward removes nothing early.
	n, err := w.q.Prune(w.cfg.Queue.DroppedMax, w.cfg.Queue.DroppedMaxAge, now, w.started, now.Sub(w.started))
	switch {
	case err == nil:
		w.pruneFailed = ""
	case err.Error() != w.pruneFailed:
		w.pruneFailed = err.Error()
		w.log.WithError(err).Warn("pruning dropped/ and corrupt/")
	}
	if n > 0 {
		w.log.WithField("files", n).Info("pruned dropped/ and corrupt/ (queue.dropped_max, queue.dropped_max_age; the history keeps every drop)")
	}
}

// busy reports whether a push or a pin call is running.
func (w *Worker) busy() bool {
	if len(w.pinning) > 0 {
		return true
	}
	for _, js := range w.running {
		if len(js) > 0 {
			return true
		}
	}
	return false
}

// await waits up to d for a job to end (whose result it then makes
// durable), a watched Nix process to end, or ctx.
func (w *Worker) await(ctx context.Context, d time.Duration) {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case res := <-w.results:
		w.finish(res)
	case res := <-w.pinResults:
		w.pinDone(res)
	case <-w.sessions.wake:
	case <-w.changes:
	case <-t.C:
	case <-ctx.Done():
		return
	}
	// Whatever else has ended meanwhile.
	for {
		select {
		case res := <-w.results:
			w.finish(res)
		case res := <-w.pinResults:
			w.pinDone(res)
		default:
			return
		}
	}
}

// drain waits for the running jobs and pin calls (cut short by the end
// of ctx) and takes their results.
func (w *Worker) drain() {
	for w.busy() {
		select {
		case res := <-w.results:
			w.finish(res)
		case res := <-w.pinResults:
			w.pinDone(res)
		}
	}
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

// WaitLeft is how long the worker waits for a back-off stamped to end at
// next, from now: nothing once it passed, and at most retryMax (none when
// not positive), since a time stamped before the clock went back would
// otherwise hold the entry for as long as the step. status shows the
// same.
func WaitLeft(next, now time.Time, retryMax time.Duration) time.Duration {
	d := max(next.Sub(now), 0)
	if retryMax > 0 {
		d = min(d, retryMax)
	}
	return d
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

// truncate cuts s to n bytes, before a UTF-8 character or an escape
// (the pusher's \x1b, %q's) rather than inside it: status shows the
// rest as it is, and half of either reads as other text.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:escape.Cut(s, n)] + "…"
	}
	return s
}
