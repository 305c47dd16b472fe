package worker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/metrics"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
)

// State is what the worker remembers for status, wait, doctor and the
// metrics: per target when it last pushed and failed and its counters,
// the running worker, and what keeps failing outside an entry (a start,
// a slow upstream, a pin's drop, a look for pins left aside). Losing it
// loses no path, so it is written without fsync.
type State struct {
	Targets map[string]*TargetState `json:"targets"`
	// Worker is what the last worker to start runs with. status reads
	// it while that worker runs: its caller may use another config.
	Worker *WorkerInfo `json:"worker,omitempty"`
	// StartError is why the last worker that tried to start could not
	// (its log.file cannot be opened, say), until one starts: a worker
	// the hook spawns has nowhere else to say it. The hook's next line,
	// status, wait and doctor show it.
	StartError *StartError `json:"start_error,omitempty"`
	// SlowUpstreams holds the upstream caches whose last round of
	// questions passed upstream_deadline (status and doctor show them),
	// until a round answers in time.
	SlowUpstreams map[string]SlowUpstream `json:"slow_upstreams,omitempty"`
	// PinDrops are, by pin file name, the pins given up on whose file
	// could not be removed, until it is or the pin is gone: the pin
	// holds no failed attempt, and its root is not queued, so wait
	// counts it failing by this, and status says why.
	PinDrops map[string]PinDrop `json:"pin_drops,omitempty"`
	// PinsAsideError is why the worker cannot look for the pins a
	// failed drop left aside in tmp/ (neither tmp/ nor pinasks/ can be
	// listed), since PinsAsideTime, until it can.
	PinsAsideError string    `json:"pins_aside_error,omitempty"`
	PinsAsideTime  time.Time `json:"pins_aside_error_time,omitzero"`

	// dirty: counted since the last save.
	dirty bool
}

// StartError is a worker's failure to start.
type StartError struct {
	Time  time.Time `json:"time"`
	PID   int       `json:"pid"`
	Error string    `json:"error"`
	Fix   string    `json:"fix,omitempty"`
}

// RecordStartError records in q's state.json why this worker could not
// start, unless another worker runs (then nothing is held up, and its
// state is its own to write).
func RecordStartError(q *queue.Queue, err error, fix string) {
	lock, lerr := q.AcquireWorker(context.Background(), 0)
	if lerr != nil || lock == nil {
		return
	}
	defer lock.Unlock()
	s := LoadState(q.Dir)
	s.StartError = &StartError{Time: time.Now().UTC(), PID: os.Getpid(), Error: truncate(err.Error(), 2000), Fix: fix}
	s.save(q.Dir)
}

// PinDrop is a pin's drop that failed, tried again after a back-off.
type PinDrop struct {
	Target      string    `json:"target"`
	Error       string    `json:"error"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
}

// pinDropFailed records the failed drop of the pin key, one more in a
// row.
func (s *State) pinDropFailed(dir, key, target, msg string, next time.Time) {
	if s.PinDrops == nil {
		s.PinDrops = map[string]PinDrop{}
	}
	d := s.PinDrops[key]
	d.Target, d.Error, d.NextAttempt = target, msg, next.UTC()
	d.Attempts++
	s.PinDrops[key] = d
	s.save(dir)
}

// pinDropsDone forgets the failed drops of the pins keep says are not
// waiting for one any more.
func (s *State) pinDropsDone(dir string, keep func(key string) bool) {
	changed := false
	for k := range s.PinDrops {
		if !keep(k) {
			delete(s.PinDrops, k)
			changed = true
		}
	}
	if changed {
		s.save(dir)
	}
}

// pinsAsideError records why pins left aside cannot be looked for; ""
// once they can.
func (s *State) pinsAsideError(dir, msg string, now time.Time) {
	s.PinsAsideError, s.PinsAsideTime = msg, now.UTC()
	if msg == "" {
		s.PinsAsideTime = time.Time{}
	}
	s.save(dir)
}

// SlowUpstream is an upstream's last round that passed the deadline.
type SlowUpstream struct {
	Why  string    `json:"why"`
	Time time.Time `json:"time"`
}

// WorkerInfo is a worker's own record of its configuration and log.
type WorkerInfo struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Fingerprint is of the configuration in use (without a watch, only
	// its file).
	Fingerprint
	LogFile string `json:"log_file"`
	// Loaded is when the configuration in use was loaded.
	Loaded time.Time `json:"config_loaded,omitzero"`
	// ConfigError is why the configuration's current version could not
	// be loaded (the worker keeps the one it has), until one loads.
	ConfigError     string    `json:"config_error,omitempty"`
	ConfigErrorTime time.Time `json:"config_error_time,omitzero"`
}

// TargetState is one target's history.
type TargetState struct {
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	Pushed      int       `json:"pushed"`
	Calls       int       `json:"calls"`
	// The other counters of the metrics (package metrics): failed
	// pusher calls, paths dropped by kind of reason, the calls'
	// durations, pins made and pin calls that failed.
	Failures     int               `json:"failures,omitempty"`
	DroppedPaths map[string]int    `json:"dropped_paths,omitempty"`
	PushSeconds  metrics.Histogram `json:"push_seconds,omitzero"`
	Pinned       int               `json:"pinned,omitempty"`
	PinFailures  int               `json:"pin_failures,omitempty"`
	LastPin      time.Time         `json:"last_pin,omitzero"`
	// QueueError is the last failure to change the target's queue
	// entries (remove, update, drop), until a push's entries are all
	// removed again.
	QueueError     string    `json:"queue_error,omitempty"`
	QueueErrorTime time.Time `json:"queue_error_time,omitzero"`
}

const stateFile = "state.json"

// LoadState reads the worker's state in a queue directory.
func LoadState(dir string) *State {
	s := &State{Targets: map[string]*TargetState{}}
	if data, err := safeopen.ReadFile(filepath.Join(dir, stateFile), safeopen.Options{NoFollow: true, MaxSize: 1 << 20}); err == nil {
		_ = json.Unmarshal(data, s)
	}
	if s.Targets == nil {
		s.Targets = map[string]*TargetState{}
	}
	return s
}

func (s *State) target(name string) *TargetState {
	t := s.Targets[name]
	if t == nil {
		t = &TargetState{}
		s.Targets[name] = t
	}
	return t
}

func (s *State) pushed(dir, target string, n int, now time.Time, allRemoved bool) {
	t := s.target(target)
	if allRemoved {
		t.QueueError, t.QueueErrorTime = "", time.Time{}
	}
	t.LastSuccess = now.UTC()
	t.Pushed += n
	t.Calls++
	s.save(dir)
}

func (s *State) failed(dir, target string, now time.Time) {
	t := s.target(target)
	t.LastFailure = now.UTC()
	t.Calls++
	t.Failures++
	s.save(dir)
}

func (s *State) pinned(dir, target string, now time.Time) {
	t := s.target(target)
	t.Pinned++
	t.LastPin = now.UTC()
	s.save(dir)
}

func (s *State) pinFailed(dir, target string) {
	s.target(target).PinFailures++
	s.save(dir)
}

// took counts a pusher call's duration; saved with the call's outcome.
func (s *State) took(target string, d time.Duration) {
	s.target(target).PushSeconds.Observe(d)
}

// dropped counts a dropped path by the kind of its reason. Saved by the
// next save (a drop comes in batches: not a write for each).
func (s *State) dropped(target, kind string) {
	t := s.target(target)
	if t.DroppedPaths == nil {
		t.DroppedPaths = map[string]int{}
	}
	t.DroppedPaths[kind]++
	s.dirty = true
}

// flush saves what was counted without a save.
func (s *State) flush(dir string) {
	if s.dirty {
		s.save(dir)
	}
}

// Counters are the target's counters, as the metrics render them.
func (t *TargetState) Counters() metrics.Counters {
	if t == nil {
		return metrics.Counters{}
	}
	return metrics.Counters{
		PushedPaths: t.Pushed, Calls: t.Calls, Failures: t.Failures,
		DroppedPaths: t.DroppedPaths, Durations: t.PushSeconds,
		Pinned: t.Pinned, PinFailures: t.PinFailures, LastSuccess: t.LastSuccess,
	}
}

func (s *State) save(dir string) {
	s.dirty = false
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return
	}
	// A new file of our own (O_EXCL), renamed over the old one: a
	// state.json.tmp someone placed as a symlink is never written through.
	f, err := os.CreateTemp(dir, stateFile+".tmp*")
	if err != nil {
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil && cerr == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, stateFile))
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// cleanStateTmp removes the temporary files of saves older than age: a
// worker killed between its CreateTemp and its Rename leaves one in the
// queue directory, which nothing else removes.
func cleanStateTmp(dir string, age time.Duration) {
	entries, _ := os.ReadDir(dir)
	for _, d := range entries {
		if !strings.HasPrefix(d.Name(), stateFile+".tmp") || !d.Type().IsRegular() {
			continue
		}
		if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.Remove(filepath.Join(dir, d.Name()))
		}
	}
}

func (s *State) setWorker(dir string, info *WorkerInfo) {
	s.Worker = info
	s.StartError = nil // one started
	s.save(dir)
}

func (s *State) queueError(dir, target, msg string, now time.Time) {
	t := s.target(target)
	t.QueueError, t.QueueErrorTime = msg, now.UTC()
	s.save(dir)
}

// upstreams records which of the upstreams asked in a round were slow,
// and forgets those that answered in time. Written only on a change.
func (s *State) upstreams(dir string, asked []string, slow map[string]string, now time.Time) {
	changed := false
	for _, u := range asked {
		why, isSlow := slow[u]
		_, was := s.SlowUpstreams[u]
		switch {
		case isSlow:
			if s.SlowUpstreams == nil {
				s.SlowUpstreams = map[string]SlowUpstream{}
			}
			s.SlowUpstreams[u] = SlowUpstream{Why: why, Time: now.UTC()}
			changed = true
		case was:
			delete(s.SlowUpstreams, u)
			changed = true
		}
	}
	if changed {
		s.save(dir)
	}
}
