package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Writing: what the hook (Add) and the worker (an entry rewritten) put
// in the queue, durably.

// Add queues the pairs durably and returns how many it queued: a single
// pair already queued counts as queued, and is not queued again unless
// a package list chose it (see again).
//
// One pair (the hook after most builds) is one small file, fsynced,
// linked into entries/, and the directory fsynced. Many pairs (`push
// --closure` of a system, a derivation with several outputs) are written
// as the lines of a bulk file (see bulk.go), fsynced once: a file or an
// fsync per entry made queueing 10,000 paths take seconds. Either way
// nothing is reported as queued before it is on disk, and the syncs do
// not grow with the number of pairs.
func (q *Queue) Add(pairs []Pair, now time.Time) (added int, err error) {
	if len(pairs) == 1 {
		return q.addOne(pairs[0], now)
	}
	// The lines are written from the pairs, with no Entry, key or
	// path string made for each: for 10,000 pairs those were most of
	// Add's work.
	type pairKey struct{ target, hash string }
	seen := make(map[pairKey]bool, len(pairs))
	uniq := make([]Pair, 0, len(pairs))
	for _, p := range pairs {
		if k := (pairKey{p.Target, p.Path.Hash}); !seen[k] {
			seen[k] = true
			uniq = append(uniq, p)
		}
	}
	return q.addBulk(uniq, now.UTC())
}

func (q *Queue) addOne(p Pair, now time.Time) (int, error) {
	e := &Entry{Target: p.Target, Path: p.Path.String(), Queued: now.UTC(), Session: p.Session, Facts: p.Facts, Within: p.Within, Listed: p.Listed, Pinned: p.Pinned}
	name := Key(p.Target, p.Path)
	dst := q.path(entriesDir, name)
	if _, err := os.Lstat(dst); err == nil {
		return q.present(p, name, now)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	for try := 0; ; try++ { // see tmpRewrites
		tmp, err2 := q.writeTmp(name, append(data, '\n'), true)
		if err2 != nil {
			return 0, err2
		}
		// link, unlike rename, keeps an entry that is already there
		// with its retry state.
		err = os.Link(tmp, dst)
		os.Remove(tmp)
		if !errors.Is(err, fs.ErrNotExist) || try == tmpRewrites {
			break
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return q.present(p, name, now)
	}
	if err != nil {
		return 0, fmt.Errorf("queueing %s: %w", p.Path, err)
	}
	return 1, syncDir(q.path(entriesDir))
}

// present queues a pair when a file is at its name in entries/. Only its
// entry makes it queued (see again): anything else there (garbage left by
// a crash or a bad restore, a directory, a FIFO) the worker sets aside in
// corrupt/, and the pair with it, never pushed. So the pair goes to a bulk
// file, also when the file cannot be read now: a pair queued twice is
// pushed once. A file larger than one entry (a shared file of many, or
// garbage) goes unread the same way: reading and parsing 16 MiB of lines
// cost the hook over a second and a line's worth of memory per line, on
// the build's path.
func (q *Queue) present(p Pair, name string, now time.Time) (int, error) {
	if fi, err := os.Lstat(q.path(entriesDir, name)); err == nil && fi.Size() > maxEntrySize {
		return q.addBulk([]Pair{p}, now.UTC())
	}
	if _, err := q.PeekFile(name); err != nil {
		return q.addBulk([]Pair{p}, now.UTC())
	}
	return q.again(p, now)
}

// again queues a pair whose entry file is there already. Chosen by a
// package list, it goes to a bulk file: the queued entry may name
// another list (one that names the path only as text), and only the
// worker, which owns the entries, can give it this one too (see
// Entry.AlsoListed). So does a pinned one (push --pin), whose pinned the
// queued entry may lack. Otherwise it counts as queued.
func (q *Queue) again(p Pair, now time.Time) (int, error) {
	if p.Listed == "" && !p.Pinned {
		return 0, nil
	}
	return q.addBulk([]Pair{p}, now.UTC())
}

// batchChunk is the size past which Add starts another bulk file, and
// maxSharedSize the largest shared file (linked under each entry's name,
// as Add wrote many pairs before bulk files) a reader accepts.
const (
	batchChunk    = 8 << 20
	maxSharedSize = 2 * batchChunk
)

// tmpRewrites bounds how often a writer writes its temporary file again
// when it was gone before the link: a worker starting after the wall
// clock was stepped forward takes a file being written for one a killed
// hook left (CleanTmp), and removes it.
const tmpRewrites = 3

// syncs, set by the tests, is called with the name of each file or
// directory the queue fsyncs, before it does; an error it returns is the
// fsync's (a failure the tests cannot cause otherwise).
var syncs func(name string) error

func (q *Queue) writeTmp(name string, data []byte, sync bool) (string, error) {
	return q.writeTmpWith(name, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}, sync)
}

// writeTmpWith is writeTmp with the content written by fill.
func (q *Queue) writeTmpWith(name string, fill func(*os.File) error, sync bool) (string, error) {
	f, err := os.CreateTemp(q.path(tmpDir), name+".*")
	if err != nil {
		return "", fmt.Errorf("writing queue entry: %w", err)
	}
	err = fill(f)
	if err == nil && sync {
		if syncs != nil {
			err = syncs(f.Name())
		}
		if err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing queue entry %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// writeEntry writes one entry to a temporary file.
func (q *Queue) writeEntry(e *Entry, sync bool) (string, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	return q.writeTmp(e.key, append(data, '\n'), sync)
}

func syncDir(dir string) error {
	if syncs != nil {
		if err := syncs(dir); err != nil {
			return fmt.Errorf("syncing %s: %w", dir, err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
