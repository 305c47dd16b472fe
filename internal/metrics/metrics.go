// Package metrics renders what the queue and its worker are doing in
// Prometheus' text format, for node exporter's textfile collector
// (metrics.file, rewritten by the worker) and `status --prometheus`.
//
// Both render one Snapshot, so they say the same. Labels are bounded:
// target names (from the config) and the kinds of reasons (a fixed set),
// never store paths.
//
// The format is written here rather than with client_golang: its
// registry, expfmt and their protobuf dependencies would be linked into
// the one binary that Nix runs after every build, and their package
// initialisation alone costs milliseconds at each start (measured in the
// commit that added this package). What is written is checked by
// promtool and read back through a real node exporter in the tests.
package metrics

import (
	"sort"
	"time"
)

// Prefix starts every metric name.
const Prefix = "cachix_filter_hook_"

// Snapshot is what the metrics say at one moment.
type Snapshot struct {
	// Targets are the configured targets, in the config's order.
	Targets []Target
	// WorkerRunning: a worker holds the queue's lock.
	WorkerRunning bool
	// ConfigError: the config file does not load now (the worker keeps
	// the last one that did).
	ConfigError bool
	// Corrupt counts unreadable entries and pins; Orphaned the entries of targets
	// no longer configured.
	Corrupt, Orphaned int
	// Now is when the snapshot was taken; ages are counted to it.
	Now time.Time
}

// Target is one target's part of a snapshot.
type Target struct {
	Name string
	// Pending counts the entries queued and not pushed yet, Failing
	// those of them that failed at least once, Dropped the entries kept
	// in dropped/.
	Pending, Failing, Dropped int
	// OldestQueued is when the oldest pending entry was queued (zero:
	// none pending).
	OldestQueued time.Time
	// PinsPending counts the pins waiting for their root's closure or
	// for a retry; PinsFailing those of them that failed at least once and
	// do not wait for their root's push.
	PinsPending, PinsFailing int
	Counters
}

// Counters are a target's totals, kept across workers (in the worker's
// state.json), so that they only grow unless that file is lost: a reset,
// which Prometheus' rate() and increase() handle.
type Counters struct {
	// PushedPaths counts the paths pushed.
	PushedPaths int
	// Calls counts the pusher calls, Failures those that failed.
	Calls    int
	Failures int
	// DroppedPaths counts the paths dropped, by the kind of reason
	// (see package policy's DropKind and the worker's own kinds).
	DroppedPaths map[string]int
	// Durations are the pusher calls' durations.
	Durations Histogram
	// Pinned counts the pins made, PinFailures the pin calls that failed.
	Pinned      int
	PinFailures int
	// LastSuccess is the time of the last successful push.
	LastSuccess time.Time
}

// Buckets are the upper bounds, in seconds, of the pusher duration
// histogram: a push of one small path takes a fraction of a second, a
// system's closure minutes, and queue.push_timeout is an hour.
var Buckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// Histogram counts observations per bucket of Buckets (not cumulative;
// the last count is above the last bound).
type Histogram struct {
	Counts []uint64
	Sum    float64
}

// Observe adds one observation.
func (h *Histogram) Observe(d time.Duration) {
	if len(h.Counts) != len(Buckets)+1 {
		// Made with other buckets (or none yet): start again, which
		// Prometheus sees as a counter reset.
		h.Counts, h.Sum = make([]uint64, len(Buckets)+1), 0
	}
	s := d.Seconds()
	i := sort.SearchFloat64s(Buckets, s)
	h.Counts[i]++
	h.Sum += s
}

// count is the number of observations.
func (h *Histogram) count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// The kinds of reasons the worker drops a queued path for, besides the
// keys of the rules (package policy's DropKind).
const (
	KindGarbageCollected = "garbage_collected"
	KindInvalid          = "invalid_path"
	// KindPackageList: the package list that chose the path no longer
	// names it or depends on it. The key's name, as policy's drop of a
	// path a list names as text only: one label value for lists.
	KindPackageList = "package_lists"
)
