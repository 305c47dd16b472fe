package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

// ListDropped reads the entries the worker dropped (dropped/), each with
// its reason. Unreadable files are skipped: they are only a record.
func (q *Queue) ListDropped() ([]*Entry, error) {
	return q.listDir(droppedDir)
}

// DroppedNames lists the files in dropped/ without reading them.
func (q *Queue) DroppedNames() ([]string, error) {
	return q.dirNames(droppedDir)
}

// CorruptNames lists the files in corrupt/.
func (q *Queue) CorruptNames() ([]string, error) {
	return q.dirNames(corruptDir)
}

func (q *Queue) dirNames(sub string) ([]string, error) {
	d, err := os.Open(q.path(sub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", q.path(sub), err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", q.path(sub), err)
	}
	return names, nil
}

func (q *Queue) listDir(sub string) ([]*Entry, error) {
	names, err := q.dirNames(sub)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, n := range names {
		if e, err := q.readEntry(q.path(sub, n), n); err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// RemoveDropped deletes a dropped entry (forget --dropped).
func (q *Queue) RemoveDropped(e *Entry) error {
	if err := os.Remove(q.path(droppedDir, e.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing dropped entry: %w", err)
	}
	return nil
}

// ForgetDrop removes the drop of key from dropped/, if there is one
// (removed false: there was none), in one unlink: what the worker does
// for each path of a small batch it pushed.
func (q *Queue) ForgetDrop(key string) (removed bool, err error) {
	for {
		err = syscall.Unlink(q.path(droppedDir, key))
		if err != syscall.EINTR {
			break
		}
	}
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("removing dropped entry %s: %w", key, err)
}

// RemoveCorrupt deletes a file from corrupt/ (forget --corrupt).
func (q *Queue) RemoveCorrupt(name string) error {
	if strings.ContainsRune(name, '/') || name == "" || name[0] == '.' {
		return fmt.Errorf("removing corrupt entry: bad name %q", name)
	}
	if err := os.Remove(q.path(corruptDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing corrupt entry: %w", err)
	}
	return nil
}

// Drop moves an entry the worker will not push to dropped/, with the
// reason, so that what was given up on can still be looked at.
func (q *Queue) Drop(e *Entry, reason string) error {
	e.Reason = reason
	return q.Apply(Changes{Dropped: []*Entry{e}}).Failed[e.key]
}

// setDropped writes an entry, its Reason set, to dropped/.
func (q *Queue) setDropped(e *Entry) error {
	if err := mkdirPrivate(q.path(droppedDir), false); err != nil {
		return fmt.Errorf("dropping queue entry: %w", err)
	}
	// Not synced: dropped/ keeps a record of what the history records
	// too, and a worker dropping 100,000 garbage-collected paths would
	// sync each.
	return q.replace(e, droppedDir, false, "dropping queue entry")
}

// Dropped returns the entry with that key if the worker dropped it after
// since. up, when above 0, is how long ago since was by the caller's
// monotonic clock: a file that young by the wall clock now counts too,
// so that a clock stepped back between since and the drop does not hide
// it (the file's time is then before since). One dropped within the
// step before since may count as well: nothing here tells them apart
// (wait leaves out one whose pair the history says went up since).
func (q *Queue) Dropped(key string, since time.Time, up time.Duration) (*Entry, bool) {
	if t := time.Now().Add(-up); up > 0 && !since.IsZero() && t.Before(since) {
		since = t
	}
	file := q.path(droppedDir, key)
	fi, err := os.Lstat(file)
	if err != nil || fi.ModTime().Before(since) {
		return nil, false
	}
	e, err := q.readEntry(file, key)
	return e, err == nil
}

// DroppedByTarget counts the entries in dropped/ of each of targets, by
// their file names alone (an entry's name ends in a digest of its
// target, see Key): status reads no file, so it stays fast however many
// entries were dropped (issue 22: it read them all).
func (q *Queue) DroppedByTarget(targets []string) (map[string]int, error) {
	names, err := q.dirNames(droppedDir)
	if err != nil {
		return nil, err
	}
	byDigest := TargetsByDigest(targets)
	out := map[string]int{}
	for _, n := range names {
		i := strings.LastIndexByte(n, '.')
		if t, ok := byDigest[n[i+1:]]; ok && i > 0 {
			out[t]++
		}
	}
	return out, nil
}

// pruneGrace is how long a dropped entry stays whatever the count:
// dropped/ is how wait and push --wait learn of a drop.
const pruneGrace = 10 * time.Minute

// Prune bounds dropped/ and corrupt/: in each, files older than maxAge
// go (0: no age limit), then the oldest past keep (0: no count limit)
// among those older than pruneGrace. It returns how many it removed. The
// history keeps the record of every drop; a corrupt file was set aside
// to be looked at, and stays as long as a drop does.
//
// A file's age is by the wall clock, but no more than the caller can
// vouch for: its age when the caller started (by the wall clock then)
// plus up, how long the caller has run by the monotonic clock. A clock
// stepped forward while a worker runs would otherwise age every file at
// once, and remove what wait is about to read. A zero started: the wall
// clock alone.
func (q *Queue) Prune(keep int, maxAge time.Duration, now, started time.Time, up time.Duration) (int, error) {
	age := func(mod time.Time) time.Duration {
		a := now.Sub(mod)
		if !started.IsZero() {
			a = min(a, max(started.Sub(mod), 0)+up)
		}
		return a
	}
	// A file that cannot be removed (a directory, an immutable file)
	// keeps no other: the first error is said, with how many more came.
	removed, more := 0, 0
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		} else {
			more++
		}
	}
	for _, sub := range []string{droppedDir, corruptDir} {
		names, err := q.dirNames(sub)
		if err != nil {
			fail(err)
			continue
		}
		if len(names) <= keep && maxAge <= 0 || len(names) == 0 {
			continue
		}
		type file struct {
			name string
			mod  time.Time
		}
		files := make([]file, 0, len(names))
		for _, n := range names {
			if fi, err := os.Lstat(q.path(sub, n)); err == nil {
				files = append(files, file{n, fi.ModTime()})
			}
		}
		sort.Slice(files, func(i, j int) bool { return files[i].mod.After(files[j].mod) })
		for i, f := range files {
			old := maxAge > 0 && age(f.mod) > maxAge
			over := keep > 0 && i >= keep && age(f.mod) > pruneGrace
			if !old && !over {
				continue
			}
			if err := os.Remove(q.path(sub, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				fail(fmt.Errorf("pruning %s: %w", q.path(sub), err))
				continue
			}
			removed++
		}
	}
	if more > 0 {
		return removed, fmt.Errorf("%w (and %d more like it)", first, more)
	}
	return removed, first
}
