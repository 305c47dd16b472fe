package worker

import (
	"cmp"
	"container/heap"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// When batches go. A target's due entries go at once when nothing is
// being pushed to it; what arrives while a push runs is gathered into the
// next call, which starts when that push ends: the pusher's own duration
// is the batching window, so a burst of builds makes a handful of calls
// and no timer holds a path back (issue 22). Two things follow the Nix
// process behind each entry (the nix-build or daemon connection that ran
// the hook), through builds:
//   - beside the running push, one more may start, with the entries that
//     arrived during it whose Nix process has no builds left (it ended,
//     or all it set out to build is valid), so that the last build of a
//     burst waits for its own push, not for the one before it to end;
//   - after a push, the next waits for the target's rest (see pace) while
//     every due entry's Nix process is still building: more is coming,
//     and the entry whose build is the last goes at once.

// failedTwice: an entry that failed this often is pushed in halves of
// its group, so one bad path cannot hold back the rest of its batch.
const failedTwice = 2

// job is one batch being pushed, with what it needs taken at its start,
// so that a reload of the configuration meanwhile does not change it.
type job struct {
	cfg *config.Config
	// live is the worker's configuration as it is now (Worker.live).
	live    *atomic.Pointer[config.Config]
	target  *config.Target
	pusher  pusher.Pusher
	facts   *factState
	entries []*queue.Entry
	tail    bool   // started beside another push of the target
	gen     uint32 // scan generation at the start
	// pinned are the roots a pin of this target waits for: the rules
	// read their facts as policy.ForPin says.
	pinned map[string]bool
	// sessions are the Nix processes that queued the batch's entries
	// (Entry.Session), each once.
	sessions []int32
	// present are the roots of the batch (entries of their own) that
	// push --closure queued others within, and whether each is in the
	// store (see presentRoots).
	present map[string]bool
}

// round is what plan found.
type round struct {
	jobs []*job
	live int       // entries of configured targets, not being pushed
	next time.Time // the earliest end of a back-off or rest; zero when none
	// resting: a target's due entries wait for its rest (see pace).
	resting bool
	// watch are the Nix processes whose end would let a batch start.
	watch []int32
}

type pick struct {
	key string
	s   *slot
}

// plan picks the batches to start now. It looks at every slot once and
// keeps, per target, only what its next batch can be made of (see
// picker): a backlog of 100,000 due entries is not copied and sorted each
// round, which took memory that grew with the backlog (issue 22).
func (w *Worker) plan(now time.Time) round {
	x := w.idx
	// What the scan kept for this round goes with it.
	defer func() { x.fresh = nil }()
	var r round
	nowM := w.mono(now)
	var nextM int64
	// What each configured target may start: a batch of its due entries
	// when nothing is pushed to it (after its rest, while their Nix
	// processes build); beside its running push, one of the entries that
	// arrived during it from Nix processes with nothing left to build;
	// nothing when two run.
	pickers := map[uint16]*picker{}
	w.builds.forget(now)
	// By session, each asked once a round: whether its Nix process is
	// alive (its end then wakes the worker), and what it builds.
	alive := map[int32]bool{}
	isAlive := func(pid int32) bool {
		a, ok := alive[pid]
		if !ok {
			a = sessionAlive(pid)
			alive[pid] = a
			if a {
				r.watch = append(r.watch, pid)
			}
		}
		return a
	}
	states := map[int32]buildState{}
	look := func(pid int32) buildState {
		st, ok := states[pid]
		if !ok {
			st = buildDone
			if isAlive(pid) {
				st = w.builds.state(pid, now)
			}
			states[pid] = st
		}
		return st
	}
	for _, t := range w.cfg.Targets {
		id, ok := x.nameID[t.Name]
		if !ok {
			continue
		}
		var reg, tl *job
		for _, j := range w.running[t.Name] {
			if j.tail {
				tl = j
			} else {
				reg = j
			}
		}
		switch {
		case reg == nil:
			pk := &picker{size: w.cfg.Queue.Batch}
			if until := w.pace[t.Name].restUntil(); now.Before(until) {
				pk.rest = until
			}
			pickers[id] = pk
		case tl == nil:
			pickers[id] = &picker{size: w.cfg.Queue.Batch, tail: true, after: reg.gen}
			// The Nix processes whose builds the running push carries
			// may queue more before they end (the last build's path):
			// their end wakes the worker, which pushes that beside at
			// once, rather than at its next look, up to pollInterval
			// later.
			for _, pid := range reg.sessions {
				isAlive(pid)
			}
		}
	}
	for k, s := range x.slots {
		if s.busy {
			continue
		}
		name := x.nameOf(s)
		if w.cfg.Target(name) == nil {
			if !w.orphans[name] {
				w.orphans[name] = true
				w.log.WithField("target", name).Warn("entries for a target that is no longer configured stay in the queue")
			}
			continue
		}
		r.live++
		if s.next > nowM {
			if nextM == 0 || s.next < nextM {
				nextM = s.next
			}
			continue
		}
		pk := pickers[s.target]
		if pk == nil {
			continue
		}
		if pk.tail {
			if s.attempts > 0 || s.born <= pk.after || look(s.session) != buildDone {
				continue
			}
		}
		if !pk.rest.IsZero() && !pk.due && look(s.session) != buildGoing {
			pk.due = true
		}
		pk.add(pick{k, s})
	}
	if nextM != 0 {
		r.next = w.started.Add(time.Duration(nextM))
	}
	for _, t := range w.cfg.Targets {
		id, ok := x.nameID[t.Name]
		if !ok || pickers[id] == nil {
			continue
		}
		pk := pickers[id]
		if !pk.rest.IsZero() && !pk.due {
			if len(pk.fresh)+len(pk.failing) > 0 {
				r.resting = true
				if r.next.IsZero() || pk.rest.Before(r.next) {
					r.next = pk.rest
				}
			}
			continue
		}
		keys := w.nextBatch(pk)
		if len(keys) == 0 {
			continue
		}
		if j := w.startJob(t, keys, pk.tail); j != nil {
			r.jobs = append(r.jobs, j)
		}
	}
	return r
}

// picker gathers a target's due entries as plan finds them, keeping what
// nextBatch chooses from: the queue.batch oldest of those that failed
// less than twice (in a heap, newest on top), and the queue.batch oldest
// of the group that failed least often among the others.
type picker struct {
	size  int
	tail  bool   // beside a running push: only what arrived after
	after uint32 // its scan generation
	// rest, when set, is the end of the target's rest (see pace): no
	// batch before it, unless due: an entry was found whose Nix process
	// is not known to be still building.
	rest    time.Time
	due     bool
	fresh   []pick
	failing []pick
	least   uint16
}

// comparePicks orders picks oldest first; keys break ties.
func comparePicks(a, b pick) int {
	return cmp.Or(cmp.Compare(a.s.queued, b.s.queued), strings.Compare(a.key, b.key))
}

// older is comparePicks for the heap.
func older(a, b pick) bool { return comparePicks(a, b) < 0 }

func (pk *picker) add(p pick) {
	switch {
	case p.s.attempts < failedTwice:
		(*newestOnTop)(&pk.fresh).keep(p, pk.size)
	case pk.least == 0 || p.s.attempts < pk.least:
		pk.least = p.s.attempts
		pk.failing = append(pk.failing[:0], p)
	case p.s.attempts == pk.least:
		// The oldest queue.batch of the group too: entries of many
		// failed batches (a backlog while the cache was down) reach
		// the same count, and halving all of them made one call far
		// larger than queue.batch, from a group as large as the backlog.
		(*newestOnTop)(&pk.failing).keep(p, pk.size)
	}
}

// keep adds p to the picks if they are fewer than size, or in place of
// the newest if p is older. A heap only once full: a backlog that fits in
// one batch (the usual case) is taken whole and sorted once by nextBatch.
func (h *newestOnTop) keep(p pick, size int) {
	if len(*h) < size {
		*h = append(*h, p)
		if len(*h) == size {
			heap.Init(h)
		}
	} else if len(*h) > 0 && older(p, (*h)[0]) {
		(*h)[0] = p
		heap.Fix(h, 0)
	}
}

// newestOnTop is a heap of picks whose root is the newest.
type newestOnTop []pick

func (h newestOnTop) Len() int           { return len(h) }
func (h newestOnTop) Less(i, j int) bool { return older(h[j], h[i]) }
func (h newestOnTop) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *newestOnTop) Push(x any)        { *h = append(*h, x.(pick)) }
func (h *newestOnTop) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// nextBatch is the batch to push next from a target's due entries: half
// of the group that failed least often among those that failed twice or
// more, the other half next (halving finds one bad path among 10,000 in
// some 14 rounds, while the halves without it go up), else the oldest
// entries, up to queue.batch and what fits in one pusher call's argv.
func (w *Worker) nextBatch(pk *picker) []pick {
	size := pk.size
	group := pk.fresh
	split := false
	if len(pk.failing) > 0 {
		group, size, split = pk.failing, len(pk.failing), true
		for _, p := range pk.failing {
			// A group whose other half went already goes whole.
			split = split && !p.s.half
		}
		if split {
			size = (len(pk.failing) + 1) / 2
		}
	}
	slices.SortFunc(group, comparePicks)
	budget := w.argBudget
	if budget <= 0 {
		budget = pusher.ArgBudget()
	}
	n, bytes := 0, 0
	for n < len(group) && n < size {
		c := int(group[n].s.plen) + 1 + 8 // pusher.ArgCost
		if n > 0 && bytes+c > budget {
			break
		}
		bytes += c
		n++
	}
	if split {
		for _, p := range group[n:] {
			p.s.half = true
		}
	}
	return group[:n]
}

// startJob reads the entries picked from their files and marks them
// busy; nil when none of them is there any more.
func (w *Worker) startJob(t *config.Target, keys []pick, tail bool) *job {
	x := w.idx
	// Sized up front: a push --closure's batch is 10,000 keys, and maps
	// and slices grown one doubling at a time were a good part of the
	// worker's round before its pusher call (issue 22).
	want := make(map[string]*slot, len(keys))
	n := map[uint32]int{}
	for _, p := range keys {
		n[p.s.src]++
	}
	bySrc := make(map[uint32][]string, len(n))
	for _, p := range keys {
		want[p.key] = p.s
		if bySrc[p.s.src] == nil {
			bySrc[p.s.src] = make([]string, 0, n[p.s.src])
		}
		bySrc[p.s.src] = append(bySrc[p.s.src], p.key)
	}
	j := &job{cfg: w.cfg, live: &w.live, target: t, pusher: w.pushers[t.Name], facts: w.facts, tail: tail, gen: x.gen, pinned: w.pinnedRoots(t.Name),
		entries: make([]*queue.Entry, 0, len(keys))}
	// take takes e, read from the file of src, for its slot: only from
	// the slot's own file. Another may hold a copy of the pair the scan
	// has not merged and removed yet (its kept entry busy, or not
	// rewritable), with other lists; taken instead, the kept line stayed
	// in its file, which goes whole once the slot has left.
	take := func(e *queue.Entry, src uint32) {
		s := want[e.Key()]
		if s == nil || s.src != src {
			return
		}
		delete(want, e.Key())
		// The worker's count wins: it may hold a back-off the
		// entry's file could not be given.
		e.Attempts = int(s.attempts)
		e.Pinned = e.Pinned || s.pinned
		s.busy = true
		j.entries = append(j.entries, e)
		if e.Session > 0 && len(j.sessions) < maxWatched && !slices.Contains(j.sessions, int32(e.Session)) {
			j.sessions = append(j.sessions, int32(e.Session))
		}
	}
	for src, ks := range bySrc {
		if src == 0 {
			for _, k := range ks {
				e, err := w.q.Read(k)
				if err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						w.log.WithError(err).Error("unreadable queue entry")
						w.metrics.stale = true // set aside in corrupt/
					}
					x.remove(k)
					continue
				}
				take(e, 0)
			}
			continue
		}
		if es, ok := x.fresh[src]; ok {
			for _, e := range es {
				take(e, src)
			}
			continue
		}
		name := x.srcName(&slot{src: src})
		if _, err := w.q.ReadBulk(name, func(e *queue.Entry) { take(e, src) }); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.WithError(err).Error("unreadable bulk file")
			// Still queued: what was not read waits a back-off and is
			// read again. Forgotten, it would go with its file, which
			// is removed unread once the entries known in it left.
			for _, k := range ks {
				if s := want[k]; s != nil && !s.busy {
					s.next = w.mono(time.Now().Add(Backoff(int(s.attempts)+1, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax)))
					delete(want, k)
				}
			}
		}
	}
	// Picked but not found: gone from the queue since the scan.
	for k, s := range want {
		if !s.busy {
			x.remove(k)
		}
	}
	if len(j.entries) == 0 {
		return nil
	}
	slices.SortFunc(j.entries, func(a, b *queue.Entry) int { return a.Queued.Compare(b.Queued) })
	w.running[t.Name] = append(w.running[t.Name], j)
	return j
}

// sessionAlive reports whether the Nix process that ran a hook still
// runs (0: no such process was recorded). A zombie has ended.
func sessionAlive(pid int32) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which ends at the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// retryNow makes every failing entry due now, in memory: the worker
// pushes them at once.
func (w *Worker) retryNow() {
	n := 0
	for _, s := range w.idx.slots {
		if s.next != 0 {
			s.next = 0
			n++
		}
	}
	w.log.WithField("entries", n).Info("retry requested: failing entries are due now")
}

// capBackoffs cuts back-offs, of entries and of pins, that end later than
// retry max from now (a reloaded configuration with a shorter
// queue.retry_max).
func (w *Worker) capBackoffs(now time.Time, retryMax time.Duration) {
	limit := w.mono(now.Add(retryMax))
	for _, s := range w.idx.slots {
		if s.next > limit {
			s.next = limit
		}
	}
	for _, p := range w.pins {
		if p.NextAttempt.After(now.Add(retryMax)) {
			p.NextAttempt = now.Add(retryMax)
		}
	}
}
