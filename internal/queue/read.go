package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Reading: the worker reads entries as it adopts them; status, wait and
// forget look without changing anything.

// Names lists the keys of the entries: the names of the files in entries/
// (not read), then the keys of the bulk files' entries not among them.
func (q *Queue) Names() ([]string, error) {
	files, bulk, err := q.Keys()
	if err != nil {
		return nil, err
	}
	return append(files, bulk...), nil
}

// Keys lists the keys of the entries, each once, in two parts: stated,
// those that may hold a retry state, and bulk, the rest. stated are the
// names of the files in entries/ (not read) and the keys of the bulk
// files that hold a retry state: the worker's Apply writes a batch's
// changed entries, with their state, to a bulk file of their own. bulk
// are the keys of the other bulk files' pairs, which have never failed:
// the hook and push write no retry state. So status and wait read stated
// alone to tell what waits for a back-off.
//
// A key holds its target's digest (KeyDigest), so that what is queued can
// be counted by target without reading an entry. A bulk file's keys are
// read once and kept (its name changes with its content), from the target
// and path at the start of each line: wait looks every 200 ms while a
// push of 10,000 paths runs, and its first look, decoding every entry,
// took 40 ms of CPU beside the worker's round before its pusher call
// (issue 22). A line that is not an entry but starts as one is counted
// until the worker moves it to corrupt/. bulk may be shared with later
// calls: the caller must not change it.
func (q *Queue) Keys() (stated, bulk []string, err error) {
	files, err := q.EntryNames()
	if err != nil {
		return nil, nil, err
	}
	plain, inStated, err := q.bulkKeys()
	if err != nil {
		return nil, nil, err
	}
	stated = files
	if len(inStated) > 0 || len(files) > 0 && len(plain) > 0 {
		have := make(map[string]bool, len(files)+len(inStated))
		for _, n := range files {
			have[n] = true
		}
		for _, k := range inStated {
			if !have[k] {
				have[k] = true
				stated = append(stated, k)
			}
		}
		bulk = make([]string, 0, len(plain))
		for _, k := range plain {
			if !have[k] {
				bulk = append(bulk, k)
			}
		}
		return stated, bulk, nil
	}
	return stated, plain, nil
}

// KeyDigest is the part of a key that tells its entry's target
// (TargetDigest of the target's name); "" for a name that is not a key.
func KeyDigest(key string) string {
	i := strings.LastIndexByte(key, '.')
	if i != storepath.HashLen || len(key)-i-1 != targetDigestLen {
		return ""
	}
	return key[i+1:]
}

// EntryNames lists the files in entries/ without reading them: the
// entries queued one by one (bulk files aside).
func (q *Queue) EntryNames() ([]string, error) {
	d, err := os.Open(q.path(entriesDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing queue: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing queue %s: %w", d.Name(), err)
	}
	return names, nil
}

// EachEntryName calls fn with the name of each file in entries/, without
// reading them, listing the directory a chunk at a time: the worker looks
// at the queue every round, and a list of 100,000 names (some 6 MB, most
// of them entries it knows already) would be garbage it holds all at once
// (issue 22: the worker's memory does not grow with the backlog). A file
// added or removed during the listing may be seen or not, as with
// EntryNames.
func (q *Queue) EachEntryName(fn func(name string)) error {
	d, err := os.Open(q.path(entriesDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing queue: %w", err)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(namesChunk)
		for _, n := range names {
			fn(n)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing queue %s: %w", d.Name(), err)
		}
	}
}

// namesChunk is how many names EachEntryName reads from the directory at
// once.
const namesChunk = 1024

// Read reads one entry for the worker. An entry that cannot be parsed, or
// that names a malformed store path, is moved to corrupt/ and reported as
// an error wrapping ErrCorrupt.
func (q *Queue) Read(name string) (*Entry, error) {
	e, err := q.Peek(name)
	if errors.Is(err, ErrCorrupt) {
		return nil, q.moveCorrupt(name, err)
	}
	return e, err
}

// Peek reads one entry without changing the queue: status and wait look,
// only the worker moves entries. A corrupt entry is an error wrapping
// ErrCorrupt.
func (q *Queue) Peek(name string) (*Entry, error) {
	e, err := q.PeekFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		if be, ok := q.bulkGet(name); ok {
			return be, nil
		}
	}
	return e, err
}

// PeekFile is Peek of entries/ alone: no bulk file is read, for a
// caller (the worker's scan) that must not load them all when the file
// is gone.
func (q *Queue) PeekFile(name string) (*Entry, error) {
	file := q.path(entriesDir, name)
	e, err := q.readEntry(file, name)
	if err != nil {
		return nil, err
	}
	p, err := storepath.Parse(storepath.StoreDir(), e.Path)
	if err != nil || e.Target == "" || Key(e.Target, p) != name {
		return nil, fmt.Errorf("%w: %s: entry does not match its name (target %q, path %q)", ErrCorrupt, file, e.Target, e.Path)
	}
	return e, nil
}

// ErrCorrupt marks an entry that was moved aside.
var ErrCorrupt = errors.New("corrupt queue entry")

// moveCorrupt moves an entry to corrupt/; cause wraps ErrCorrupt.
func (q *Queue) moveCorrupt(name string, cause error) error {
	if err := mkdirPrivate(q.path(corruptDir), false); err != nil {
		return fmt.Errorf("%w (and moving it aside failed: %v)", cause, err)
	}
	dst := q.path(corruptDir, asideName(name))
	if err := os.Rename(q.path(entriesDir, name), dst); err != nil {
		return fmt.Errorf("%w (and moving it aside failed: %v)", cause, err)
	}
	return fmt.Errorf("%w; moved to %s", cause, dst)
}

// asideName is the name in corrupt/ of a file set aside: its own, cut to
// leave room under the 255 bytes a name may have (any name can be put in
// entries/), and the time.
func asideName(name string) string {
	return name[:min(len(name), 200)] + "." + time.Now().UTC().Format("20060102T150405.000000000")
}

// List reads every entry without changing the queue. Corrupt entries are
// reported as errors alongside the good ones; the worker moves them aside.
func (q *Queue) List() ([]*Entry, []error, error) {
	names, err := q.Names()
	if err != nil {
		return nil, nil, err
	}
	var entries []*Entry
	var bad []error
	for _, n := range names {
		e, err := q.Peek(n)
		switch {
		case err == nil:
			entries = append(entries, e)
		case errors.Is(err, fs.ErrNotExist):
			// pushed and removed since the listing
		default:
			bad = append(bad, err)
		}
	}
	return entries, bad, nil
}

// readEntry decodes an entry file; JSON it cannot parse is ErrCorrupt. A
// file of several lines is shared by the entries a bulk Add linked to it:
// the line whose pair has that key is the entry. Shared files are parsed
// once per inode (they are never rewritten: an update replaces the
// entry's name with a file of its own).
func (q *Queue) readEntry(file, key string) (*Entry, error) {
	// Never follow a symlink in the queue, and never read more than a
	// shared file can be.
	f, fi, err := safeopen.Open(file, safeopen.Options{NoFollow: true, MaxSize: maxSharedSize})
	if err != nil {
		// Only what is wrong with the file itself sets it aside: an
		// error of the moment (EMFILE, EIO) leaves the entry queued,
		// read again at the next scan, and it is pushed.
		if errors.Is(err, safeopen.ErrSymlink) || errors.Is(err, safeopen.ErrNotRegular) || errors.Is(err, safeopen.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		// open refuses a socket (ENXIO) before its kind can be
		// checked: one is no more an entry than a FIFO is.
		if !errors.Is(err, fs.ErrNotExist) {
			if fi, lerr := os.Lstat(file); lerr == nil && !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("%w: %s is not a regular file (%v)", ErrCorrupt, file, err)
			}
		}
		return nil, fmt.Errorf("reading queue entry %s: %w", file, err)
	}
	defer f.Close()
	id, shared := sharedID(fi)
	if shared {
		if e, ok := q.shared.get(id, key); ok {
			return e, nil
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSharedSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading queue entry %s: %w", file, err)
	}
	if len(data) > maxSharedSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, file, maxSharedSize)
	}
	body := bytes.TrimRight(data, "\n")
	if !bytes.Contains(body, []byte{'\n'}) {
		if len(data) > maxEntrySize {
			return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, file, maxEntrySize)
		}
		e := &Entry{key: key}
		if err := json.Unmarshal(data, e); err != nil {
			return nil, fmt.Errorf("%w: parsing %s: %v", ErrCorrupt, file, err)
		}
		return e, nil
	}
	all := parseShared(body)
	e, ok := all[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s: no line of it is the entry %s", ErrCorrupt, file, key)
	}
	delete(all, key)
	if shared && len(all) > 0 {
		q.shared.put(id, all)
	}
	e.key = key
	return e, nil
}

// parseShared decodes the lines of a shared file by their keys. A line
// that is not an entry of a store path is left out: its name, if any
// links to it, then reads as corrupt.
func parseShared(body []byte) map[string]*Entry {
	all := map[string]*Entry{}
	lp := newLineParser()
	_ = eachLine(bytes.NewReader(body), func(line []byte) {
		if e, key := lp.parse(line); e != nil {
			all[key] = e
		}
	})
	return all
}

// Get reads the entry with that key, without changing the queue; false
// when it is not queued (or unreadable).
func (q *Queue) Get(key string) (*Entry, bool) {
	e, err := q.Peek(key)
	return e, err == nil
}
