package worker

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// result is what a job came to. The job decides and pushes on a goroutine
// of its own; the main loop makes its outcome durable (Apply), so that
// only it changes the queue and the index.
type result struct {
	job *job
	// pushed went up; upstream were left out because an upstream cache
	// has them: both leave the queue. reasons, by key, are why an
	// upstream one was, and what a pushed one uploaded inside its
	// closure that the rules deny (closure_deny = "push").
	pushed   []*queue.Entry
	upstream []*queue.Entry
	reasons  map[string]string
	// dropped have their Reason set, and the kind of it by key (for
	// the metrics).
	dropped []*queue.Entry
	kinds   map[string]string
	// failed were sent and the push failed: backed off together.
	failed []*queue.Entry
	err    error
	// undecided could not be decided now (a Nix query failed): backed
	// off together, each with why.
	undecided map[*queue.Entry]error
	// cut: the worker is stopping, or (reloaded) its configuration
	// changed before the push; nothing about the entries changed.
	cut, reloaded bool

	query, took time.Duration // the Nix queries, the pusher call
	// waited is how long the newest entry sent waited for the pusher
	// call: the worker's own round (scan, plan, decisions) and any rest.
	waited    time.Duration
	roots     int // paths given to the pusher (see roots)
	upstreams pathfacts.UpstreamRound
	out       *pusher.Summary
	notes     *notes
}

// run decides the job's entries by the rules (re-applied right before
// pushing) and pushes what is left, in one pusher call.
func (j *job) run(ctx context.Context, log *logrus.Entry) *result {
	r := &result{job: j, reasons: map[string]string{}, kinds: map[string]string{}, undecided: map[*queue.Entry]error{}, notes: newNotes(log)}
	start := time.Now()
	j.facts.mu.Lock()
	cl, facts, factsErr := j.query(ctx, log, r)
	ls := j.lists(ctx)
	r.query = time.Since(start)
	if ctx.Err() != nil {
		// Cut short by shutdown, not a failure of the entries.
		j.facts.mu.Unlock()
		r.cut = true
		return r
	}
	j.present = presentRoots(j.entries)
	send := make([]*queue.Entry, 0, len(j.entries))
	for _, e := range j.entries {
		reason, kind, upstream, also, err := j.decide(e, cl, ls, facts, r.notes)
		if err != nil {
			r.undecided[e] = fmt.Errorf("not pushed: %w", err)
			r.notes.add(logrus.ErrorLevel, "not pushed", "error", err.Error(), e.Path)
			continue
		}
		switch {
		case upstream:
			r.notes.add(logrus.InfoLevel, "not pushed", "reason", reason, e.Path)
			r.upstream = append(r.upstream, e)
			r.reasons[e.Key()] = reason
		case reason != "":
			// Noted by finish, which may not drop it (a copy held).
			e.Reason = reason
			// Pinned also when a pin of it is known: the dropped file
			// then says so to a later worker (see doPins). Not on an
			// entry written back: the pin may go before it is decided.
			e.Pinned = e.Pinned || j.pinned[e.Path]
			r.dropped = append(r.dropped, e)
			r.kinds[e.Key()] = kind
		default:
			send = append(send, e)
			if also != "" {
				r.reasons[e.Key()] = also
			}
		}
	}
	var refs func(string) ([]string, bool)
	if facts != nil {
		refs = j.facts.gather.References
	}
	args := roots(send, refs)
	j.facts.mu.Unlock()
	if j.live != nil && j.live.Load() != j.cfg {
		// The configuration was reloaded while the batch was decided
		// (its facts can take a while, and wait for another job's):
		// the new rules may deny what the old ones send, or select what
		// they drop. Nothing is pushed or dropped; the next round
		// decides the entries again with the rules in use.
		r.cut, r.reloaded = true, true
		return r
	}
	if len(send) == 0 {
		return r
	}
	r.roots = len(args)
	// The output is summed up in the batch's one line; each line of it
	// (one per path, from nix copy and cachix) only at debug level.
	r.out = pusher.NewSummary(storepath.StoreDir())
	if log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		r.out.Line = func(line string) { log.Debug(line) }
	}
	start = time.Now()
	r.waited = newestWait(send, start)
	err := j.factsFailed(factsErr)
	if err == nil {
		err = j.pusher.Push(ctx, args, r.out)
	}
	r.out.Flush()
	r.took = time.Since(start)
	if err != nil && ctx.Err() != nil {
		// Shutting down: the push was cut short, not failed.
		r.cut = true
		return r
	}
	if err != nil {
		r.failed, r.err = send, err
	} else {
		r.pushed = send
	}
	return r
}

// newestWait is how long before now the newest of es was queued; 0 when
// the clock says it was queued later (a clock set back).
func newestWait(es []*queue.Entry, now time.Time) time.Duration {
	var newest time.Time
	for _, e := range es {
		if e.Queued.After(newest) {
			newest = e.Queued
		}
	}
	if newest.IsZero() {
		return 0
	}
	return max(now.Sub(newest), 0)
}

// presentRoots finds which of the roots that entries are queued within
// (Entry.Within), and that are entries of the batch themselves, are in
// the store. A path in the closure of one that is, is too: Nix collects
// no path that a live one refers to. So each such entry is not looked
// up in the store on its own (10,000 lstat calls took a drain 50 ms).
func presentRoots(es []*queue.Entry) map[string]bool {
	inBatch := map[string]bool{}
	for _, e := range es {
		if e.Within == "" {
			inBatch[e.Path] = true
		}
	}
	present := map[string]bool{}
	for _, e := range es {
		r := e.Within
		if _, seen := present[r]; r == "" || seen || !inBatch[r] {
			continue
		}
		_, err := os.Lstat(r)
		present[r] = err == nil
	}
	return present
}

// roots are the paths to give the pusher for send: those no other path of
// send refers to, when the references are known. `nix copy` and `cachix
// push` upload each path's whole closure, so the upload is the same, and
// Nix spends far less on one argument than on 10,000 (issue 22: the
// worker's nix copy of a 10,000-path closure, path by path, took 11.4 s
// where the same copy of its root took 7.8 s). A path whose references
// are not known is given as it is. A path push --closure queued within a
// root's closure (Entry.Within) is covered by that root when it goes too.
func roots(send []*queue.Entry, refs func(string) ([]string, bool)) []string {
	in := make(map[string]bool, len(send))
	within := map[string]bool{} // roots that are not within another
	for _, e := range send {
		in[e.Path] = true
		if e.Within == "" {
			within[e.Path] = true
		}
	}
	covered := make(map[string]bool, len(send))
	for _, e := range send {
		if e.Within != "" && e.Within != e.Path && within[e.Within] {
			covered[e.Path] = true
		}
	}
	if refs != nil {
		for _, e := range send {
			rs, ok := refs(e.Path)
			if !ok {
				continue
			}
			for _, r := range rs {
				// A path may refer to itself; store paths refer to
				// one another only without cycles otherwise.
				if r != e.Path && in[r] {
					covered[r] = true
				}
			}
		}
	}
	paths := make([]string, 0, len(send)-len(covered))
	for _, e := range send {
		if !covered[e.Path] {
			paths = append(paths, e.Path)
		}
	}
	return paths
}

// notes sums up what a job logs per path: one line per message (and
// reason), with a count and the first path, at most maxNotes lines; each
// one goes to debug as it comes.
type notes struct {
	log   *logrus.Entry
	m     map[string]*note
	order []string
	more  int
}

type note struct {
	level  logrus.Level
	msg    string
	fields logrus.Fields
	n      int
}

const maxNotes = 5

func newNotes(log *logrus.Entry) *notes { return &notes{log: log, m: map[string]*note{}} }

// add notes msg about path; key and val are the field that tells notes
// of the same message apart (a reason), if any.
func (ns *notes) add(level logrus.Level, msg, key, val, path string, more ...any) {
	fields := logrus.Fields{"path": path}
	if key != "" {
		fields[key] = val
	}
	for i := 0; i+1 < len(more); i += 2 {
		fields[fmt.Sprint(more[i])] = more[i+1]
	}
	if ns.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		ns.log.WithFields(fields).Debug(msg)
	}
	id := msg + "\x00" + val
	if n := ns.m[id]; n != nil {
		n.n++
		return
	}
	if len(ns.order) >= maxNotes {
		ns.more++
		return
	}
	ns.m[id] = &note{level: level, msg: msg, fields: fields, n: 1}
	ns.order = append(ns.order, id)
}

// flush logs the notes, each once.
func (ns *notes) flush() {
	for _, id := range ns.order {
		n := ns.m[id]
		f := n.fields
		if n.n > 1 {
			f = logrus.Fields{}
			for k, v := range n.fields {
				f[k] = v
			}
			f["paths"] = n.n
			f["first"] = f["path"]
			delete(f, "path")
		}
		ns.log.WithFields(f).Log(n.level, n.msg)
	}
	if ns.more > 0 {
		ns.log.WithField("paths", ns.more).Warn("and more paths with other reasons (see `cachix-filter-hook log`)")
	}
	ns.m, ns.order, ns.more = map[string]*note{}, nil, 0
}

// summary is the fields of a batch's one line.
func (r *result) summary() logrus.Fields {
	f := logrus.Fields{"paths": len(r.pushed) + len(r.failed), "duration": r.took.Round(time.Millisecond).String()}
	if n := len(r.pushed) + len(r.failed); r.roots > 0 && r.roots < n {
		f["roots"] = r.roots
	}
	if r.query >= time.Millisecond {
		f["query"] = r.query.Round(time.Millisecond).String()
	}
	if r.waited >= time.Millisecond {
		f["waited"] = r.waited.Round(time.Millisecond).String()
	}
	if r.out != nil {
		if text := r.out.Text(); text != "" {
			f["output"] = text
		}
		if n := r.out.Lines(); n > 0 {
			f["output_lines"] = n
		}
	}
	if r.job.tail {
		f["beside"] = "a running push"
	}
	return f
}

// names lists up to n paths' names, for a line that counts them.
func names(es []*queue.Entry, n int) string {
	var out []string
	for _, e := range es[:min(n, len(es))] {
		out = append(out, e.Path[strings.LastIndexByte(e.Path, '/')+1:])
	}
	sort.Strings(out)
	s := strings.Join(out, ", ")
	if len(es) > n {
		s += fmt.Sprintf(" and %d more", len(es)-n)
	}
	return s
}
