// Package queue is the durable on-disk queue between the hook and the
// worker.
//
// Each (target, path) pair is one small JSON file in <dir>/entries, named
// after the pair so that queueing the same pair twice leaves one entry. The
// hook writes an entry to <dir>/tmp, fsyncs it, links it into entries/ and
// fsyncs that directory before it returns: a SIGKILL or a power cut after
// the hook exits loses nothing. The hook never lists or reads entries/, so
// its cost does not grow with the queue.
//
// Only the worker (holding <dir>/lock) rewrites or removes entries. An entry
// that cannot be read is moved to corrupt/, one the worker gives up on by
// rule (garbage-collected, denied closure) to dropped/ with the reason:
// nothing is deleted that was not pushed.
package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// maxEntrySize bounds an entry file: a path, a target, times and an error
// cut at 1000 bytes.
const maxEntrySize = 64 << 10

const (
	entriesDir = "entries"
	tmpDir     = "tmp"
	corruptDir = "corrupt"
	droppedDir = "dropped"
	retryFile  = "retry-now"
)

// Queue is a queue directory.
type Queue struct {
	Dir string

	shared sharedCache
}

// Entry is one (target, path) pair waiting to be pushed, with its retry
// state.
type Entry struct {
	Target      string    `json:"target"`
	Path        string    `json:"path"`
	Queued      time.Time `json:"queued"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// Reason says why an entry was dropped; set in dropped/ only.
	Reason string `json:"reason,omitempty"`

	key string
}

// Key is the entry's file name.
func (e *Entry) Key() string { return e.key }

// Pair is what the hook hands to the queue.
type Pair struct {
	Target string
	Path   storepath.Path
}

// Open creates the queue directories if needed. They are private (0700):
// the queue names paths the worker will run cachix on, as root. A queue
// directory that is not the running user's own (see mkdirPrivate), or
// whose parents fail the trust rule, is refused.
func Open(dir string) (*Queue, error) {
	q := &Queue{Dir: dir}
	if err := trust.CheckParents(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("queue directory: %w", err)
		}
		// A missing parent is made below, private, by this user.
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return nil, fmt.Errorf("creating queue directory: %w", err)
		}
		if err := trust.CheckParents(dir); err != nil {
			return nil, fmt.Errorf("queue directory: %w", err)
		}
	}
	for _, d := range []string{dir, q.path(entriesDir), q.path(tmpDir)} {
		if err := mkdirPrivate(d, d == dir); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func (q *Queue) path(elem ...string) string {
	return filepath.Join(append([]string{q.Dir}, elem...)...)
}

// Key names the entry of a pair: the store path's hash (unique within a
// store) and a digest of the target name (which may contain '/').
func Key(target string, p storepath.Path) string {
	sum := sha256.Sum256([]byte(target))
	return p.Hash + "." + hex.EncodeToString(sum[:6])
}

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

// Names lists the entries' file names without reading them.
func (q *Queue) Names() ([]string, error) {
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
	dst := q.path(corruptDir, name+"."+time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.Rename(q.path(entriesDir, name), dst); err != nil {
		return fmt.Errorf("%w (and moving it aside failed: %v)", cause, err)
	}
	return fmt.Errorf("%w; moved to %s", cause, dst)
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

// Update rewrites an entry's retry state. It is not fsynced: losing an
// attempt count in a crash only makes a retry come sooner.
func (q *Queue) Update(e *Entry) error {
	tmp, err := q.writeEntry(e, false)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, q.path(entriesDir, e.key)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("updating queue entry: %w", err)
	}
	return nil
}

// Remove deletes a pushed entry.
func (q *Queue) Remove(e *Entry) error {
	if err := os.Remove(q.path(entriesDir, e.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing queue entry: %w", err)
	}
	return nil
}

// Drop moves an entry the worker will not push to dropped/, with the
// reason, so that what was given up on can still be looked at.
func (q *Queue) Drop(e *Entry, reason string) error {
	if err := mkdirPrivate(q.path(droppedDir), false); err != nil {
		return fmt.Errorf("dropping queue entry: %w", err)
	}
	e.Reason = reason
	tmp, err := q.writeEntry(e, false)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, q.path(droppedDir, e.key)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dropping queue entry: %w", err)
	}
	return q.Remove(e)
}

// Dropped returns the entry with that key if the worker dropped it after
// since.
func (q *Queue) Dropped(key string, since time.Time) (*Entry, bool) {
	file := q.path(droppedDir, key)
	fi, err := os.Lstat(file)
	if err != nil || fi.ModTime().Before(since) {
		return nil, false
	}
	e, err := q.readEntry(file, key)
	return e, err == nil
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
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading queue entry: %w", err)
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
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
		return nil, fmt.Errorf("%w: reading %s: %v", ErrCorrupt, file, err)
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
	storeDir := storepath.StoreDir()
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) > maxEntrySize {
			continue
		}
		e := &Entry{}
		if json.Unmarshal(line, e) != nil || e.Target == "" {
			continue
		}
		p, err := storepath.Parse(storeDir, e.Path)
		if err != nil {
			continue
		}
		all[Key(e.Target, p)] = e
	}
	return all
}

// Get reads the entry with that key, without changing the queue; false
// when it is not queued (or unreadable).
func (q *Queue) Get(key string) (*Entry, bool) {
	e, err := q.Peek(key)
	return e, err == nil
}

// RequestRetry asks the worker to make every failing entry due now.
func (q *Queue) RequestRetry() error {
	f, err := os.OpenFile(q.path(retryFile), os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("requesting retry: %w", err)
	}
	return f.Close()
}

// TakeRetryRequest reports whether a retry was requested, and clears it.
func (q *Queue) TakeRetryRequest() bool {
	return os.Remove(q.path(retryFile)) == nil
}

// CleanTmp removes temporary files older than age, left by killed hooks.
func (q *Queue) CleanTmp(age time.Duration) {
	entries, _ := os.ReadDir(q.path(tmpDir))
	for _, d := range entries {
		if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > age && !strings.HasPrefix(d.Name(), ".") {
			os.Remove(q.path(tmpDir, d.Name()))
		}
	}
}
