package metrics

import (
	"maps"
	"slices"
)

// Render writes the snapshot in the text format. Every family is written
// even when it has no sample, so that a dashboard's query finds its
// name from the first scrape on.
func Render(s Snapshot) []byte {
	w := &textWriter{}
	perTarget := func(name, typ, help string, value func(t *Target) (float64, bool)) {
		w.family(Prefix+name, typ, help)
		for i := range s.Targets {
			if v, ok := value(&s.Targets[i]); ok {
				w.sample(Prefix+name, []label{{"target", s.Targets[i].Name}}, v)
			}
		}
	}
	always := func(f func(t *Target) float64) func(t *Target) (float64, bool) {
		return func(t *Target) (float64, bool) { return f(t), true }
	}

	perTarget("pending", "gauge", "Entries queued and not pushed yet, failing ones included.",
		always(func(t *Target) float64 { return float64(t.Pending) }))
	perTarget("failing", "gauge", "Pending entries whose last push failed; they are retried with back-off.",
		always(func(t *Target) float64 { return float64(t.Failing) }))
	perTarget("dropped", "gauge", "Entries the worker gave up on by rule, kept in the queue's dropped/ (see log, forget --dropped).",
		always(func(t *Target) float64 { return float64(t.Dropped) }))
	perTarget("oldest_pending_age_seconds", "gauge", "Age of the oldest pending entry when the metrics were written; 0 when none is pending.",
		always(func(t *Target) float64 {
			if t.OldestQueued.IsZero() || t.Pending == 0 {
				return 0
			}
			return max(0, s.Now.Sub(t.OldestQueued).Seconds())
		}))
	perTarget("last_success_timestamp_seconds", "gauge", "Unix time of the last successful push; absent before the first.",
		func(t *Target) (float64, bool) {
			if t.LastSuccess.IsZero() {
				return 0, false
			}
			return float64(t.LastSuccess.UnixMilli()) / 1000, true
		})
	perTarget("pushed_paths_total", "counter", "Paths pushed.",
		always(func(t *Target) float64 { return float64(t.PushedPaths) }))

	w.family(Prefix+"dropped_paths_total", "counter", "Paths dropped, by the kind of reason: the rule's key (deny and allow are \"patterns\"), garbage_collected or invalid_path.")
	for _, t := range s.Targets {
		for _, k := range slices.Sorted(maps.Keys(t.DroppedPaths)) {
			w.sample(Prefix+"dropped_paths_total", []label{{"target", t.Name}, {"reason", k}}, float64(t.DroppedPaths[k]))
		}
	}

	w.family(Prefix+"pusher_calls_total", "counter", "Pusher calls (cachix push, nix copy), by result.")
	for _, t := range s.Targets {
		w.sample(Prefix+"pusher_calls_total", []label{{"target", t.Name}, {"result", "success"}}, float64(t.Calls-t.Failures))
		w.sample(Prefix+"pusher_calls_total", []label{{"target", t.Name}, {"result", "failure"}}, float64(t.Failures))
	}

	name := Prefix + "pusher_duration_seconds"
	w.family(name, "histogram", "Duration of the pusher calls.")
	for _, t := range s.Targets {
		h := t.Durations
		var cum uint64
		for i, le := range Buckets {
			if i < len(h.Counts) {
				cum += h.Counts[i]
			}
			w.sample(name+"_bucket", []label{{"target", t.Name}, {"le", formatFloat(le)}}, float64(cum))
		}
		n := h.count()
		w.sample(name+"_bucket", []label{{"target", t.Name}, {"le", "+Inf"}}, float64(n))
		w.sample(name+"_sum", []label{{"target", t.Name}}, h.Sum)
		w.sample(name+"_count", []label{{"target", t.Name}}, float64(n))
	}

	perTarget("pins_pending", "gauge", "Pins waiting for their root's closure to be in the cache, or for a retry.",
		always(func(t *Target) float64 { return float64(t.PinsPending) }))
	perTarget("pins_failing", "gauge", "Pending pins whose last cachix pin call failed, but for those waiting for their root's push.",
		always(func(t *Target) float64 { return float64(t.PinsFailing) }))
	perTarget("pinned_total", "counter", "Pins made (cachix pin calls that succeeded).",
		always(func(t *Target) float64 { return float64(t.Pinned) }))
	perTarget("pin_failures_total", "counter", "cachix pin calls that failed.",
		always(func(t *Target) float64 { return float64(t.PinFailures) }))

	w.family(Prefix+"worker_running", "gauge", "1 while a worker holds the queue's lock.")
	w.sample(Prefix+"worker_running", nil, boolValue(s.WorkerRunning))
	w.family(Prefix+"config_error", "gauge", "1 when the config file does not load; the worker keeps the last configuration that did (see status).")
	w.sample(Prefix+"config_error", nil, boolValue(s.ConfigError))
	w.family(Prefix+"corrupt_entries", "gauge", "Unreadable queue entries, set aside in the queue's corrupt/ until forget --corrupt or pruned as dropped/ is, and unreadable pins, left in pins/.")
	w.sample(Prefix+"corrupt_entries", nil, float64(s.Corrupt))
	w.family(Prefix+"orphaned_entries", "gauge", "Entries of targets no longer in the config; they stay queued (see forget).")
	w.sample(Prefix+"orphaned_entries", nil, float64(s.Orphaned))
	return w.b.Bytes()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
