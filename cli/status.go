package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// targetStatus is one target's line in `status`.
type targetStatus struct {
	Name        string         `json:"name"`
	Destination string         `json:"destination"`
	Pending     int            `json:"pending"`
	Failing     int            `json:"failing"`
	LastSuccess *time.Time     `json:"last_success"`
	Pushed      int            `json:"pushed"`
	Failures    []failingEntry `json:"failing_entries"`
	// Dropped counts the entries in dropped/ (see `log`, `forget
	// --dropped`); LastErrors are the newest failures and drops from
	// the history.
	Dropped    int              `json:"dropped"`
	LastErrors []history.Record `json:"last_errors"`
	// QueueError is the worker's last failure to change this target's
	// entries (remove, update, drop); it retries with back-off.
	QueueError string `json:"queue_error,omitempty"`
	// Pins are the pins (push --pin) waiting to be made; Pinned counts
	// those made, the last at LastPin.
	Pins    []pinStatus `json:"pins"`
	Pinned  int         `json:"pinned"`
	LastPin *time.Time  `json:"last_pin,omitempty"`
}

type failingEntry struct {
	Path        string    `json:"path"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error"`
}

type queueStatus struct {
	Queue string `json:"queue"`
	// ConfigFile and LogFile are what the running worker uses, as it
	// recorded them in state.json; the caller's when no worker runs (or
	// it recorded nothing): FilesOf says which ("worker", "caller").
	ConfigFile       string `json:"config_file"`
	LogFile          string `json:"log_file"`
	FilesOf          string `json:"files_of"`
	CallerConfigFile string `json:"caller_config_file"`
	CallerLogFile    string `json:"caller_log_file"`
	// ConfigDiffers names how the running worker's configuration differs
	// from the caller's: "file", "content" (same file, other bytes: not
	// reloaded yet, or not loadable), "environment" (other
	// CACHIX_FILTER_HOOK_* overrides), "log_file".
	ConfigDiffers []string `json:"config_differs,omitempty"`
	// WorkerConfigError is why the worker could not load its changed
	// configuration; it keeps the one loaded at WorkerConfigLoaded.
	WorkerConfigError  string     `json:"worker_config_error,omitempty"`
	WorkerConfigLoaded *time.Time `json:"worker_config_loaded,omitempty"`
	WorkerPID          int        `json:"worker_pid,omitempty"`
	// WorkerEnv names the worker's CACHIX_FILTER_HOOK_* overrides.
	WorkerEnv     []string        `json:"worker_env,omitempty"`
	WorkerRunning bool            `json:"worker_running"`
	Targets       []*targetStatus `json:"targets"`
	// Orphaned counts entries of targets no longer in the config.
	Orphaned int `json:"orphaned"`
	// Corrupt counts unreadable entries, in entries/ and in corrupt/, as
	// the metrics do.
	Corrupt int `json:"corrupt"`
	// CorruptPins counts the files in pins/ that cannot be read: the
	// worker never makes them, nor sets them aside.
	CorruptPins int `json:"corrupt_pins"`
	// UnreadLists counts the package lists the hook did not read (it
	// could not, or they were past its bounds), which the worker reads (queue.UnreadList): what they name
	// is not queued yet.
	UnreadLists int `json:"unread_lists"`
	// SlowUpstreams are the upstream caches whose last round of
	// questions passed upstream_deadline: the paths they did not answer
	// for were pushed without their answer.
	SlowUpstreams map[string]worker.SlowUpstream `json:"slow_upstreams,omitempty"`
	// WorkerStartError is why the last worker could not start, until
	// one starts.
	WorkerStartError *worker.StartError `json:"worker_start_error,omitempty"`
	// PinsAsideError is why the worker cannot look for the pins a
	// failed drop left aside in tmp/, to link them back.
	PinsAsideError string `json:"pins_aside_error,omitempty"`

	// retryMax bounds the back-offs print shows (see nextIn); 0: none.
	retryMax time.Duration
}

// corruptOf counts the errors of q.List that the worker will set aside:
// an error of the moment (EMFILE, EIO) leaves an entry queued, read again.
// With those already in corrupt/, it is what the metrics count.
func corruptOf(bad []error) int {
	n := 0
	for _, err := range bad {
		if errors.Is(err, queue.ErrCorrupt) {
			n++
		}
	}
	return n
}

func collectStatus(c *config.Config, q *queue.Queue) (*queueStatus, error) {
	entries, bad, err := q.List()
	if err != nil {
		return nil, err
	}
	running, _ := q.WorkerRunning()
	st := &queueStatus{Queue: q.Dir, ConfigFile: c.File, LogFile: c.Log.File, FilesOf: "caller",
		CallerConfigFile: c.File, CallerLogFile: c.Log.File, WorkerRunning: running, Corrupt: corruptOf(bad), Targets: []*targetStatus{},
		retryMax: c.Queue.RetryMax}
	state := worker.LoadState(q.Dir)
	if wi := state.Worker; running && wi != nil && processAlive(wi.PID) {
		st.workerFiles(c, wi)
	}
	// Those set aside too, as the metrics count them: until forget
	// --corrupt, they are what was not pushed.
	if names, err := q.CorruptNames(); err == nil {
		st.Corrupt += len(names)
	}
	st.SlowUpstreams = state.SlowUpstreams
	st.WorkerStartError = state.StartError
	st.PinsAsideError = state.PinsAsideError
	byName := map[string]*targetStatus{}
	for _, t := range c.Targets {
		ts := &targetStatus{Name: t.Name, Destination: "cachix " + t.Cache, Failures: []failingEntry{}, LastErrors: []history.Record{}, Pins: []pinStatus{}}
		if t.Store != "" {
			ts.Destination = "nix copy --to " + config.RedactURI(t.Store)
		}
		if s := state.Targets[t.Name]; s != nil {
			ts.Pushed = s.Pushed
			ts.QueueError = s.QueueError
			ts.Pinned = s.Pinned
			if !s.LastPin.IsZero() {
				lp := s.LastPin
				ts.LastPin = &lp
			}
			if !s.LastSuccess.IsZero() {
				ls := s.LastSuccess
				ts.LastSuccess = &ls
			}
		}
		byName[t.Name] = ts
		st.Targets = append(st.Targets, ts)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Queued.Before(entries[j].Queued) })
	for _, e := range entries {
		ts := byName[e.Target]
		if ts == nil {
			st.Orphaned++
			continue
		}
		ts.Pending++
		if e.Attempts > 0 {
			ts.Failing++
			// Last errors come from the pusher with the token
			// already redacted.
			ts.Failures = append(ts.Failures, failingEntry{Path: e.Path, Attempts: e.Attempts, NextAttempt: e.NextAttempt, LastError: e.LastError})
		}
	}
	addOutcomes(st, q, byName)
	st.CorruptPins = addPins(q, byName, state.PinDrops)
	if names, err := q.UnreadListNames(); err == nil {
		st.UnreadLists = len(names)
	}
	return st, nil
}

// workerFiles shows the files the running worker recorded, and how its
// configuration differs from the caller's.
func (st *queueStatus) workerFiles(c *config.Config, wi *worker.WorkerInfo) {
	st.FilesOf, st.WorkerPID = "worker", wi.PID
	st.ConfigFile, st.LogFile, st.WorkerEnv = wi.File, wi.LogFile, wi.Env
	if !wi.Loaded.IsZero() {
		loaded := wi.Loaded
		st.WorkerConfigLoaded = &loaded
	}
	st.WorkerConfigError = wi.ConfigError
	mine := worker.FingerprintOf(c.File)
	switch {
	case wi.File != c.File:
		st.ConfigDiffers = append(st.ConfigDiffers, "file")
	case wi.Digest != "" && wi.Digest != mine.Digest:
		st.ConfigDiffers = append(st.ConfigDiffers, "content")
	}
	if wi.EnvDigest != "" && wi.EnvDigest != mine.EnvDigest {
		st.ConfigDiffers = append(st.ConfigDiffers, "environment")
	}
	if wi.LogFile != c.Log.File {
		st.ConfigDiffers = append(st.ConfigDiffers, "log_file")
	}
}

// processAlive reports whether pid runs (as anyone).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (st *queueStatus) print(w io.Writer) {
	worker := "not running"
	if st.WorkerRunning {
		worker = "running"
	}
	if st.WorkerPID > 0 {
		worker += fmt.Sprintf(" (pid %d)", st.WorkerPID)
	}
	conf, log := configName(st.ConfigFile), st.LogFile
	if slices.Contains(st.ConfigDiffers, "file") {
		conf += fmt.Sprintf(" (the running worker's; yours is %s)", configName(st.CallerConfigFile))
	}
	if slices.Contains(st.ConfigDiffers, "log_file") {
		log += fmt.Sprintf(" (the running worker's; yours is %s)", st.CallerLogFile)
	}
	statusLine(w, "config %s", conf)
	statusLine(w, "log %s", log)
	statusLine(w, "queue %s, worker %s", st.Queue, worker)
	if se := st.WorkerStartError; se != nil {
		statusLine(w, "  the last worker could not start (%s): %s", se.Time.Local().Format(time.RFC3339), se.Error)
		if se.Fix != "" {
			statusLine(w, "  fix: %s", se.Fix)
		}
	}
	loaded := "at start"
	if st.WorkerConfigLoaded != nil {
		loaded = "at " + st.WorkerConfigLoaded.Local().Format(time.RFC3339)
	}
	switch {
	case st.WorkerConfigError != "":
		statusLine(w, "  the worker cannot load the changed configuration and keeps the one loaded %s: %s", loaded, st.WorkerConfigError)
	case slices.Contains(st.ConfigDiffers, "content"):
		statusLine(w, "  %s changed since the worker loaded it %s; it reloads within seconds", st.ConfigFile, loaded)
	}
	if slices.Contains(st.ConfigDiffers, "environment") {
		names := "none"
		if len(st.WorkerEnv) > 0 {
			names = strings.Join(st.WorkerEnv, " ")
		}
		statusLine(w, "  the worker runs with other CACHIX_FILTER_HOOK_* overrides than yours (its own: %s)", names)
	}
	for _, t := range st.Targets {
		last := "never"
		if t.LastSuccess != nil {
			last = t.LastSuccess.Local().Format(time.RFC3339)
		}
		statusLine(w, "%s (%s): %d pending, %d failing, %d dropped, last success %s, %d pushed", t.Name, t.Destination, t.Pending, t.Failing, t.Dropped, last, t.Pushed)
		for _, f := range t.Failures {
			statusLine(w, "  failing %s: %d attempts, next in %s: %s", f.Path, f.Attempts, nextIn(f.NextAttempt, st.retryMax), oneLine(f.LastError))
		}
		if t.QueueError != "" {
			statusLine(w, "  queue error (retried with back-off): %s", t.QueueError)
		}
		printPins(w, t, st.retryMax)
		printLastErrors(w, t)
	}
	if st.Orphaned > 0 {
		statusLine(w, "%d entries belong to targets no longer in the config", st.Orphaned)
	}
	if st.Corrupt > 0 {
		statusLine(w, "%d unreadable entries, set aside in %s/corrupt by the worker (forget --corrupt deletes them)", st.Corrupt, st.Queue)
	}
	if st.CorruptPins > 0 {
		statusLine(w, "%d unreadable %s in %s/pins, never made (the worker logs each: remove it, then push --pin again)", st.CorruptPins, plural(st.CorruptPins, "pin"), st.Queue)
	}
	if st.PinsAsideError != "" {
		statusLine(w, "the worker cannot look for the pins a failed drop left aside in %s/tmp (retried with back-off): %s", st.Queue, oneLine(st.PinsAsideError))
	}
	if st.UnreadLists > 0 {
		// Not "could not read": past what one run reads, the hook
		// records lists it did not try (pkglist.ErrTooMany).
		statusLine(w, "%d package %s not read by the hook, in %s/lists: the worker reads each and queues what it names (its log says when)", st.UnreadLists, plural(st.UnreadLists, "list"), st.Queue)
	}
	for _, u := range slices.Sorted(maps.Keys(st.SlowUpstreams)) {
		s := st.SlowUpstreams[u]
		statusLine(w, "upstream %s is slow (%s, at %s): the paths it did not answer for were pushed", u, s.Why, s.Time.Local().Format(time.RFC3339))
	}
}

// nextIn is how long until a back-off ends, as the worker waits it
// (worker.WaitLeft).
func nextIn(next time.Time, retryMax time.Duration) time.Duration {
	return worker.WaitLeft(next, time.Now(), retryMax).Round(time.Second)
}

func (st *queueStatus) pending() int {
	n := st.Orphaned
	for _, t := range st.Targets {
		n += t.Pending
	}
	return n
}

// statusOptions are status's flags (see the command table).
type statusOptions struct {
	json, prometheus bool
}

func runStatus(e *env, o *statusOptions) int {
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return e.statusWithoutConfig(o)
	}
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	if o.prometheus {
		return e.printMetrics(c, q, false)
	}
	st, err := collectStatus(c, q)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	if o.json {
		enc := jsonEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	st.print(e.stdout)
	return 0
}

// statusWithoutConfig shows the queue of a configuration that does not
// load, and exits 1: what is queued is still there, and a broken config
// is when one most wants to see it. The targets are those the queue
// names; nothing in it is changed.
func (e *env) statusWithoutConfig(o *statusOptions) int {
	dir := config.QueueDirOf(e.configFlag)
	if p := queue.Diagnose(dir); p != nil {
		e.errorf("the queue %s: %s", dir, p.Msg)
		return 1
	}
	if _, err := os.Lstat(dir); err != nil {
		e.errorf("nothing queued: no queue at %s", dir)
		return 1
	}
	q := &queue.Queue{Dir: dir}
	c := &config.Config{Queue: config.Queue{Dir: dir}}
	seen := map[string]bool{}
	digests := map[string]bool{} // of the names seen
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			digests[queue.TargetDigest(name)] = true
			c.Targets = append(c.Targets, &config.Target{Name: name})
		}
	}
	entries, _, _ := q.List()
	for _, en := range entries {
		add(en.Target)
	}
	// One dropped entry read per target, not each: a name tells its
	// target's digest, and DroppedByTarget counts them by their names
	// (issue 22: status stays fast however many were dropped).
	dropped, _ := q.DroppedNames()
	for _, n := range dropped {
		d := n[strings.LastIndexByte(n, '.')+1:]
		if digests[d] {
			continue
		}
		if en, ok := q.Dropped(n, time.Time{}, 0); ok {
			digests[d] = true
			add(en.Target)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(worker.LoadState(dir).Targets)) {
		add(name)
	}
	if pins, _, err := q.ListPins(); err == nil {
		for _, p := range pins {
			add(p.Target)
		}
	}
	if o.prometheus {
		// The metrics still, with config_error 1: a config that does not
		// load is what an alert is for.
		e.printMetrics(c, q, true)
		return 1
	}
	st, err := collectStatus(c, q)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	file, _ := config.Find(e.configFlag)
	st.ConfigFile = configName(file) + " (does not load: see above)"
	st.CallerConfigFile, st.LogFile, st.CallerLogFile = st.ConfigFile, "unknown", "unknown"
	for _, t := range st.Targets {
		t.Destination = "destination unknown"
	}
	if o.json {
		enc := jsonEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 1
	}
	e.errorf("the configuration does not load; the queue as it is:")
	st.print(e.stdout)
	return 1
}

// lastErrors is how many of a target's newest failures and drops status
// shows.
const lastErrors = 3

// addOutcomes adds to the status what the worker gave up on (dropped/)
// and its newest errors (the history).
func addOutcomes(st *queueStatus, q *queue.Queue, byName map[string]*targetStatus) {
	// Counted by name: status reads none of the dropped entries.
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	if counts, err := q.DroppedByTarget(names); err == nil {
		for n, c := range counts {
			byName[n].Dropped = c
		}
	}
	// The newest outcome of each path: one pushed since it failed is no
	// longer an error.
	recs, _ := history.Read(q.Dir)
	seen := map[string]bool{}
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		ts := byName[r.Target]
		k := pairKey(r.Target, r.Path)
		if ts == nil || seen[k] || isPinOutcome(r.Outcome) {
			continue
		}
		seen[k] = true
		if (r.Outcome == history.Dropped || r.Outcome == history.Failed) && len(ts.LastErrors) < lastErrors {
			ts.LastErrors = append(ts.LastErrors, r)
		}
	}
}

// printLastErrors prints the last errors of paths not already listed as
// failing.
func printLastErrors(w io.Writer, t *targetStatus) {
	failing := map[string]bool{}
	for _, f := range t.Failures {
		failing[f.Path] = true
	}
	for _, r := range t.LastErrors {
		if failing[r.Path] {
			continue
		}
		statusLine(w, "  last %s %s %s: %s", r.Outcome, r.Time.Local().Format(time.RFC3339), r.Path, oneLine(r.Reason))
	}
}

// statusLine prints one line of status. What it shows comes from
// state.json, the queue, the history and the config (errors quoting
// files and pusher output, paths, URIs): its control characters are
// escaped, and a newline in it cannot forge a line, as in log and doctor.
func statusLine(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, escape.Controls(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", `\x0a`)))
}
