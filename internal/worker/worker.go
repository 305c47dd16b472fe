// Package worker drains the queue: it batches due entries per target,
// drops paths that can no longer be pushed, calls the target's pusher and
// backs off failed entries, until the queue is empty.
package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
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
