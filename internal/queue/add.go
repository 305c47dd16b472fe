package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Writing: what the hook (Add) and the worker (an entry rewritten) put
// in the queue, durably.

// Add queues the pairs durably and returns how many were new; a pair
// already queued counts as queued.
//
// One pair (the hook after most builds) is one small file, fsynced, linked
// into entries/, and the directory fsynced. Many pairs (`push --closure`
// of a system, a derivation with several outputs) would cost a write and
// an fsync each, which made queueing 10,000 paths take seconds; instead
// they are written as lines of one file, fsynced once, which is then
// hard-linked under each entry's name, and the directory is fsynced once.
// An entry name that is a link to such a file names its line (see
// readEntry). Either way nothing is reported as queued before it is on
// disk, and the syncs do not grow with the number of pairs.
func (q *Queue) Add(pairs []Pair, now time.Time) (added int, err error) {
	if len(pairs) == 1 {
		return q.addOne(pairs[0], now)
	}
	var buf bytes.Buffer
	var keys []string
	seen := make(map[string]bool, len(pairs))
	enc := json.NewEncoder(&buf)
	for i, p := range pairs {
		name := Key(p.Target, p.Path)
		if !seen[name] {
			seen[name] = true
			if err := enc.Encode(&Entry{Target: p.Target, Path: p.Path.String(), Queued: now.UTC()}); err != nil {
				return added, err
			}
			keys = append(keys, name)
		}
		if buf.Len() < batchChunk && i < len(pairs)-1 {
			continue
		}
		n, err := q.addShared(buf.Bytes(), keys)
		added += n
		if err != nil {
			return added, q.syncAfterError(added, err)
		}
		buf.Reset()
		keys = keys[:0]
	}
	if added == 0 {
		return 0, nil
	}
	return added, syncDir(q.path(entriesDir))
}

func (q *Queue) addOne(p Pair, now time.Time) (int, error) {
	e := &Entry{Target: p.Target, Path: p.Path.String(), Queued: now.UTC()}
	name := Key(p.Target, p.Path)
	dst := q.path(entriesDir, name)
	if _, err := os.Lstat(dst); err == nil {
		return 0, nil
	}
	data, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	tmp, err := q.writeTmp(name, append(data, '\n'), true)
	if err != nil {
		return 0, err
	}
	// link, unlike rename, keeps an entry that is already there with
	// its retry state.
	err = os.Link(tmp, dst)
	os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("queueing %s: %w", p.Path, err)
	}
	return 1, syncDir(q.path(entriesDir))
}

// addShared writes lines (one entry per key, in order) to one fsynced
// file and links it under each key that is not queued yet.
func (q *Queue) addShared(lines []byte, keys []string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	tmp, err := q.writeTmp("batch", lines, true)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	added := 0
	for _, name := range keys {
		err := os.Link(tmp, q.path(entriesDir, name))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return added, fmt.Errorf("queueing %s: %w", name, err)
		}
		added++
	}
	return added, nil
}

// batchChunk is the size past which Add starts another shared file, and
// maxSharedSize the largest shared file a reader accepts.
const (
	batchChunk    = 8 << 20
	maxSharedSize = 2 * batchChunk
)

// syncs counts the fsyncs Add makes, for the tests.
var syncs func()

// syncAfterError makes what was queued before an error durable, so that
// the count Add returns holds (the hook reports it).
func (q *Queue) syncAfterError(added int, err error) error {
	if added == 0 {
		return err
	}
	if serr := syncDir(q.path(entriesDir)); serr != nil {
		return fmt.Errorf("%w (and %v)", err, serr)
	}
	return err
}

func (q *Queue) writeTmp(name string, data []byte, sync bool) (string, error) {
	f, err := os.CreateTemp(q.path(tmpDir), name+".*")
	if err != nil {
		return "", fmt.Errorf("writing queue entry: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && sync {
		if syncs != nil {
			syncs()
		}
		err = f.Sync()
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
		syncs()
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
