package worker

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

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
