package worker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// What the worker knows of the queue, between rounds: a small record per
// entry (slot), no pointers, about 100 bytes with its key, so that 100,000
// queued entries take some 10 MB and the garbage collector has nothing to
// follow in them (issue 22: the worker held every entry, 1.2 KB each,
// 119 MiB peak with 100,000). The entries themselves (path, last error)
// are read again from their files for the batch being pushed.

// slot is what the worker keeps of one entry.
type slot struct {
	queued   int64  // wall clock, UnixNano: oldest first; 0: not known
	next     int64  // back-off ends, on the worker's monotonic clock (see mono); 0: due
	src      uint32 // 0: its own file in entries/; else a bulk file (w.bulk)
	gen      uint32 // scan that last saw its file (entries/ only)
	born     uint32 // scan that found it
	attempts uint16
	target   uint16 // w.names index
	plen     uint16 // length of its path, for the argv budget
	busy     bool   // in a batch being pushed
	half     bool   // its failing group was halved, and the other half went
	pinned   bool   // a copy of it says pinned (see queue.Entry.Pinned)
	held     bool   // a copy of it stays queued, decided after it (see scan, relist, finish)
	session  int32  // pid of the Nix process that ran the hook; 0: none
}

// bulkFile is one bulk file the worker knows, under an id that stays when
// Apply replaces the file by one holding its other entries.
type bulkFile struct {
	name string
	gen  uint32
	n    int // slots whose entry lives in it
	// unread: its last read failed, or left out a pair queued again
	// that names a package list (see scan), so n may miss entries it
	// holds: each scan reads it again, and it is never removed unread.
	unread bool
}

// index is the worker's view of the queue.
type index struct {
	slots map[string]*slot
	bulk  map[uint32]*bulkFile
	ids   map[string]uint32 // bulk file name to id
	next  uint32            // last bulk id given
	gen   uint32
	// names interns target names: slots hold an index into it.
	names  []string
	nameID map[string]uint16
	// stamp is the directories' modification times at the last scan,
	// when they can be trusted to change with the next entry.
	stamp    [2]int64
	lastFull time.Time
	// fresh are the entries of the bulk files this round's scan read,
	// by id, for the batches plan starts right after it: read again
	// there, a push --closure of 10,000 paths parsed its file twice
	// before its pusher call (issue 22). Only files of at most a batch
	// are kept, and only until the end of the round's plan, so that
	// the worker's memory still does not grow with the backlog.
	fresh map[uint32][]*queue.Entry
	// sent are the keys of entries pushed while a copy of theirs was
	// held: the next scan removes that copy, the same pair, rather than
	// pushing it again.
	sent map[string]sentMark
}

// sentMark tells the held copy of a pair pushed from the same pair queued
// again since (forget removed the copy, then push --force): a mark kept
// while a bulk file stays unreadable must not take the new one for the
// copy, which would be removed unpushed.
type sentMark struct {
	upTo   uint32 // the last bulk file known when made: a later one is new
	listed bool   // a scan listed entries/ since: a file there now is new
	// file is the pair's file in entries/ when made (zero: none): one
	// there now that is another file was queued since (forget, then
	// push --force, before the next scan).
	file fileID
	// queued is when that file says its pair was queued (UnixNano; 0:
	// unreadable). The new file of a push --force may reuse the inode
	// and have the same size and mtime, stamped within one tick of the
	// file system's clock (a second on some): queued, from the hook's
	// or push's clock in nanoseconds, still tells it.
	queued int64
}

// fileID tells a file from another made at the same name since: the
// inode, and its size and modification time in case the inode was freed
// and reused (as queue's shared files are told apart). Not the change
// time: the hook removes its temporary name after linking the entry
// into entries/, which moves the ctime of the copy a mark was made for,
// and the copy, taken for a new file, was pushed again.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// entryFile is the identity of the file of key in entries/ (zero: none,
// or it cannot be looked at).
func (w *Worker) entryFile(key string) fileID {
	fi, err := os.Lstat(filepath.Join(w.q.Dir, "entries", key))
	if err != nil {
		return fileID{}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// entryQueued is when the file of key in entries/ says its pair was
// queued, as UnixNano (0: none, or it cannot be read).
func (w *Worker) entryQueued(key string) int64 {
	e, err := w.q.PeekFile(key)
	if err != nil {
		return 0
	}
	return e.Queued.UnixNano()
}

func newIndex() *index {
	return &index{slots: map[string]*slot{}, bulk: map[uint32]*bulkFile{}, ids: map[string]uint32{}, nameID: map[string]uint16{}}
}

func (x *index) nameOf(s *slot) string { return x.names[s.target] }

func (x *index) intern(target string) uint16 {
	if id, ok := x.nameID[target]; ok {
		return id
	}
	id := uint16(len(x.names))
	x.names = append(x.names, target)
	x.nameID[target] = id
	return id
}

// srcName is the queue's name for a slot's source ("" for entries/).
func (x *index) srcName(s *slot) string {
	if s.src == 0 {
		return ""
	}
	if b := x.bulk[s.src]; b != nil {
		return b.name
	}
	return ""
}

// put adds or replaces the slot of key.
func (x *index) put(key string, s *slot) {
	x.remove(key)
	x.slots[key] = s
	if b := x.bulk[s.src]; s.src != 0 && b != nil {
		b.n++
	}
}

// remove forgets the slot of key.
func (x *index) remove(key string) {
	s, ok := x.slots[key]
	if !ok {
		return
	}
	if b := x.bulk[s.src]; s.src != 0 && b != nil {
		b.n--
	}
	delete(x.slots, key)
}

// move makes a slot's entry live in src now.
func (x *index) move(s *slot, src uint32) {
	if b := x.bulk[s.src]; s.src != 0 && b != nil {
		b.n--
	}
	s.src = src
	if b := x.bulk[src]; src != 0 && b != nil {
		b.n++
	}
}

func (x *index) addBulk(name string) uint32 {
	x.next++
	x.bulk[x.next] = &bulkFile{name: name, gen: x.gen}
	x.ids[name] = x.next
	return x.next
}

// replaced follows Apply's replacement of bulk files.
func (x *index) replaced(m map[string]string) {
	x.fresh = nil
	for old, nw := range m {
		id, ok := x.ids[old]
		if !ok {
			continue
		}
		delete(x.ids, old)
		if nw == "" {
			delete(x.bulk, id)
			continue
		}
		x.bulk[id].name = nw
		x.ids[nw] = id
	}
}

// mono is t on the worker's monotonic clock: what it waits on, which no
// step of the wall clock moves. Never 0, which means "due".
func (w *Worker) mono(t time.Time) int64 { return max(int64(t.Sub(w.started)), 1) }

// adopt makes a slot of an entry read from disk. The times in an entry
// are wall-clock times, written by a hook or an earlier worker, maybe
// before the clock was stepped: a back-off that reaches further than
// queue.retry_max (the clock went back) is cut to it.
func (w *Worker) adopt(e *queue.Entry, src uint32, now time.Time) *slot {
	// UnixNano of a time it cannot hold (an entry without one: year 1) is
	// undefined; such an entry is kept with none (0), and has no age.
	var queued int64
	if y := e.Queued.Year(); y > 1677 && y < 2262 {
		queued = e.Queued.UnixNano()
	}
	s := &slot{queued: queued, src: src, gen: w.idx.gen, born: w.idx.gen, attempts: uint16(min(e.Attempts, 1<<16-1)),
		target: w.idx.intern(e.Target), plen: uint16(min(len(e.Path), 1<<16-1)), session: int32(e.Session), pinned: e.Pinned}
	if !e.NextAttempt.IsZero() {
		s.next = w.mono(now.Add(WaitLeft(e.NextAttempt, now, w.cfg.Queue.RetryMax)))
	}
	return s
}

// scan brings the index up to date with the queue directory: new entry
// files and bulk files are read and adopted, vanished ones forgotten. It
// skips the listing when neither directory changed since a scan that can
// trust their times. A pair found twice (queued again) keeps the copy
// known first, with its retry state; the other copy is removed, once the
// package lists it names are in the kept one (relist).
func (w *Worker) scan(now time.Time) {
	x := w.idx
	stamp, trusted := w.dirStamp()
	if trusted && stamp == x.stamp && now.Sub(x.lastFull) < fullScanEvery {
		return
	}
	x.gen++
	x.fresh = nil
	var dups []*queue.Entry
	more := map[string][]string{} // by key: the lists its other copies name
	saw := map[string]bool{}      // keys of x.sent whose copy was found
	unread := false               // a bulk file could not be read
	first := ^uint32(0)           // the oldest of those
	over := 0                     // unreadable entries past maxUnreadable
	err := w.q.EachEntryName(func(n string) {
		if s, ok := x.slots[n]; ok {
			if s.src == 0 {
				s.gen = x.gen
			} else if !s.busy {
				// Queued again one by one (push --pin of a root a
				// bulk file holds): it goes, its pinned and its
				// lists stay. Unread for a moment (EMFILE, EIO), it
				// stays for the next scan, held: a drop of the
				// slot's entry is not the pair's. A corrupt file is
				// no copy: the scan after the slot's sets it aside.
				e, err := w.q.PeekFile(n)
				if err != nil {
					s.held = s.held || !errors.Is(err, queue.ErrCorrupt) && !errors.Is(err, fs.ErrNotExist)
					return
				}
				s.pinned = s.pinned || e.Pinned
				if ls := e.Listings(); len(ls) > 0 {
					more[n] = append(more[n], ls...)
				}
				dups = append(dups, queue.Stub(n, ""))
			} else {
				s.held = true
			}
			return
		}
		if m, ok := x.sent[n]; ok && !m.listed && m.file == w.entryFile(n) && m.queued == w.entryQueued(n) {
			saw[n] = true
			dups = append(dups, queue.Stub(n, ""))
			return
		}
		e, err := w.q.Read(n)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !w.unreadable[n] {
				w.metrics.stale = true // set aside in corrupt/
				// Past maxUnreadable, not named: each full scan
				// would log them all again.
				if len(w.unreadable) >= maxUnreadable {
					over++
				} else {
					w.unreadable[n] = true
					w.log.WithError(err).Error("unreadable queue entry")
				}
			}
			// Kept while it stays (not set aside): newEntries takes
			// it for seen, and the same pair queued again for new.
			if _, err := os.Lstat(filepath.Join(w.q.Dir, "entries", n)); err != nil {
				delete(w.unreadable, n)
			}
			return
		}
		// Read: an error of the moment is over, and the mark goes
		// with it (kept, the same pair queued again after this one
		// was pushed would not be new to newEntries).
		delete(w.unreadable, n)
		x.put(n, w.adopt(e, 0, now))
	})
	if err != nil {
		w.log.WithError(err).Error("listing queue")
		return
	}
	if over != w.unreadableOver {
		w.unreadableOver = over
		if over > 0 {
			w.log.WithField("count", over).Errorf("more unreadable queue entries, past the first %d", maxUnreadable)
		}
	}
	bulks, err := w.q.BulkNames()
	if err != nil {
		w.log.WithError(err).Error("listing queue")
		return
	}
	var clean []string
	kept := 0 // entries in x.fresh: a batch's worth at most, all files together
	for _, n := range bulks {
		id, ok := x.ids[n]
		if ok {
			x.bulk[id].gen = x.gen
			if !x.bulk[id].unread {
				continue
			}
		} else {
			id = x.addBulk(n)
		}
		var es []*queue.Entry
		keep, held := true, false
		bad, err := w.q.ReadBulk(n, func(e *queue.Entry) {
			if keep = keep && kept+len(es) < w.cfg.Queue.Batch; keep {
				es = append(es, e)
			} else {
				es = nil
			}
			if old, ok := x.slots[e.Key()]; ok {
				// Queued again, in another file: that copy goes. (A
				// pair twice in one file is one entry; removing the
				// copy would remove both lines.) Queued again by push
				// --pin, it leaves its pinned behind.
				if old.src == id {
					old.pinned = old.pinned || e.Pinned
					return
				}
				if old.busy && e.Pinned && !old.pinned {
					// Its pinned cannot reach the batch deciding the
					// pair, which may drop it or leave it upstream:
					// this copy stays, held, to be decided next. Nor
					// the slot's, until the batch ends: a later scan
					// would take the copy for one the batch knew.
					held, old.held = true, true
					return
				}
				old.pinned = old.pinned || e.Pinned
				if ls := e.Listings(); len(ls) > 0 {
					if old.busy {
						// Its lists cannot join a copy being
						// decided: this one stays, for a later
						// scan.
						held, old.held = true, true
						return
					}
					more[e.Key()] = append(more[e.Key()], ls...)
				}
				dups = append(dups, e)
				return
			}
			if m, ok := x.sent[e.Key()]; ok && id <= m.upTo {
				saw[e.Key()] = true
				dups = append(dups, e)
				return
			}
			x.put(e.Key(), w.adopt(e, id, now))
		})
		if bad > 0 {
			clean = append(clean, n)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			if !x.bulk[id].unread {
				w.log.WithError(err).Error("unreadable bulk file")
			}
			x.bulk[id].unread, unread = true, true
			first = min(first, id)
		} else {
			x.bulk[id].unread = held
		}
		if keep && bad == 0 && err == nil {
			if x.fresh == nil {
				x.fresh = map[uint32][]*queue.Entry{}
			}
			x.fresh[id] = es
			kept += len(es)
		}
	}
	// What vanished: entry files (forget) and bulk files.
	gone := map[uint32]bool{}
	for id, b := range x.bulk {
		if b.gen != x.gen {
			gone[id] = true
			delete(x.ids, b.name)
			delete(x.bulk, id)
		}
	}
	for k, s := range x.slots {
		if !s.busy && (s.src == 0 && s.gen != x.gen || gone[s.src]) {
			x.remove(k)
		}
	}
	x.stamp, x.lastFull = stamp, now
	// A mark goes with the copy the scan found, or once the scan read
	// everything: a held copy in a file it could not read is still the
	// pair pushed, and would be pushed again. Only a file known when the
	// mark was made can hold that copy.
	if unread {
		for k, m := range x.sent {
			if saw[k] || m.upTo < first {
				delete(x.sent, k)
				continue
			}
			m.listed = true
			x.sent[k] = m
		}
	} else {
		x.sent = nil
	}
	if len(more) > 0 {
		stay, moved, again := w.relist(more)
		dups = slices.DeleteFunc(dups, func(e *queue.Entry) bool {
			if nw, ok := moved[e.Source()]; ok {
				e.SetSource(nw)
			}
			if !stay[e.Key()] {
				return false
			}
			if id, ok := x.ids[e.Source()]; ok {
				x.bulk[id].unread = true
			}
			// Whatever kept it (a full entry, or one not read or
			// not rewritten now), the copy is held: a drop of the
			// entry by its own lists is not the pair's (see finish).
			if s := x.slots[e.Key()]; s != nil {
				s.held = true
			}
			return true
		})
		for i, n := range clean {
			if nw, ok := moved[n]; ok {
				clean[i] = nw
			}
		}
		clean = slices.DeleteFunc(clean, func(n string) bool { return n == "" })
		if again {
			x.stamp = [2]int64{}
		}
	}
	// A copy removed now is no longer one a slot holds: its lists, if
	// any, are in the slot's entry (finish drops it with a record again).
	for _, e := range dups {
		if s := x.slots[e.Key()]; s != nil && !s.busy {
			s.held = false
		}
	}
	if len(dups) > 0 || len(clean) > 0 {
		res := w.q.Apply(queue.Changes{Done: dups}, clean...)
		x.replaced(res.Replaced)
		if res.Aside > 0 {
			w.metrics.stale = true
			w.log.WithField("lines", res.Aside).Error("lines of a bulk file that are not queue entries were moved to corrupt/")
		}
		// Removing what was queued twice changed the directories.
		x.stamp = [2]int64{}
	}
}

// fullScanEvery bounds how long the worker trusts the directories' times.
const fullScanEvery = 30 * time.Second

// maxUnreadable bounds the names of unreadable entries kept to log once.
const maxUnreadable = 10000

// dirStamp is the modification times of entries/ and bulk/, and whether
// they can be trusted to change with the next entry: a directory's time
// comes from a clock that ticks every few milliseconds, so a change in
// the same tick as the last scan would not show; a time far from now,
// past or future, is one no change can repeat.
func (w *Worker) dirStamp() ([2]int64, bool) {
	var st [2]int64
	trusted := true
	for i, d := range []string{"entries", "bulk"} {
		fi, err := os.Stat(filepath.Join(w.q.Dir, d))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				trusted = false
			}
			continue
		}
		st[i] = fi.ModTime().UnixNano()
		// A time well ahead of the clock (it was set back since) is
		// trusted too: the next change sets one unlike it.
		if d := time.Since(fi.ModTime()); d < 100*time.Millisecond && d > -100*time.Millisecond {
			trusted = false
		}
	}
	return st, trusted
}

// newEntries reports whether the queue holds entry files or bulk files
// the worker has not seen. One it found unreadable and could not move
// aside was seen: taken for new, it kept a spawned worker for ever. Past
// maxUnreadable their names are not kept, so one not known is read again
// (only then: a worker leaving) and is new only if it can be read.
func (w *Worker) newEntries() bool {
	found := false
	_ = w.q.EachEntryName(func(n string) {
		if _, ok := w.idx.slots[n]; found || ok || w.unreadable[n] {
			return
		}
		if len(w.unreadable) >= maxUnreadable {
			if _, err := w.q.PeekFile(n); err != nil {
				return
			}
		}
		found = true
	})
	if found {
		return true
	}
	bulks, _ := w.q.BulkNames()
	for _, n := range bulks {
		if _, ok := w.idx.ids[n]; !ok {
			return true
		}
	}
	return false
}

// relist gives the entries of pairs queued again the package lists
// their other copies name (more, by key), before those copies go: the
// list that depends on a path may be the second to queue it (the hook
// cannot ask Nix which), and a copy removed with it lost the path. An
// entry keeps queue.MaxListed lists at most, the first that came; a copy
// naming one more stays, held (see slot.held), and is said in the log.
// It returns the keys whose other copies must stay, their entry not read
// or not rewritten now or full, the bulk files Apply replaced, and
// whether the next scan must look again: not for a full entry alone,
// whose copy waits for it to be decided (which changes the directories).
func (w *Worker) relist(more map[string][]string) (stay map[string]bool, moved map[string]string, again bool) {
	x := w.idx
	stay = map[string]bool{}
	bySrc := map[uint32]map[string]bool{}
	for k := range more {
		if s := x.slots[k]; s != nil {
			if bySrc[s.src] == nil {
				bySrc[s.src] = map[string]bool{}
			}
			bySrc[s.src][k] = true
		}
	}
	var updated []*queue.Entry
	give := func(e *queue.Entry) {
		c := *e // not changed in place: a reader may share it
		c.AlsoListed = slices.Clone(e.AlsoListed)
		changed := false
		for _, l := range more[e.Key()] {
			ch, full := c.AddListed(l)
			changed = changed || ch
			if !full {
				continue
			}
			// Any local user can fill an entry with lists naming the
			// path as text: a list past them keeps its copy queued,
			// held as for a busy entry, to be decided by its own
			// lists once this entry is.
			stay[e.Key()] = true
			if s := x.slots[e.Key()]; s != nil && !s.held {
				s.held = true
				w.log.WithFields(logrus.Fields{"path": c.Path, "target": c.Target, "list": l, "kept": queue.MaxListed}).
					Warn("more package lists name the path than its queue entry keeps: this one waits until the entry is decided")
			}
		}
		if changed {
			updated = append(updated, &c)
		}
	}
	for src, keys := range bySrc {
		if src == 0 {
			for k := range keys {
				e, err := w.q.PeekFile(k)
				if err != nil {
					stay[k], again = true, true
					continue
				}
				give(e)
			}
			continue
		}
		b := x.bulk[src]
		if b != nil {
			_, _ = w.q.ReadBulk(b.name, func(e *queue.Entry) {
				if keys[e.Key()] {
					delete(keys, e.Key())
					give(e)
				}
			})
		}
		for k := range keys {
			stay[k], again = true, true // not read: its file failed, or is gone
		}
	}
	// A kept entry in entries/ is rewritten in place (queue.Update: a
	// rename that entries/ does not sync): durable before its copies
	// leave bulk/, or a power cut could keep the removals and lose the
	// lists. Also when nothing changes now: an earlier scan rewrote it,
	// and its sync may have failed.
	syncFiles := func() {
		if len(bySrc[0]) == 0 {
			return
		}
		if err := w.q.SyncEntries(); err != nil {
			w.log.WithError(err).Error("keeping the package lists of paths queued again")
			for k := range bySrc[0] {
				stay[k], again = true, true
			}
		}
	}
	if len(updated) == 0 {
		syncFiles()
		return stay, nil, again
	}
	res := w.q.Apply(queue.Changes{Updated: updated})
	x.replaced(res.Replaced)
	syncFiles()
	for _, e := range updated {
		if err, bad := res.Failed[e.Key()]; bad {
			w.log.WithError(err).WithField("path", e.Path).Error("keeping the package lists of a path queued again")
			stay[e.Key()] = true
			continue
		}
		if s := x.slots[e.Key()]; s != nil {
			x.move(s, w.srcID(e.Source()))
		}
	}
	return stay, res.Replaced, true
}
