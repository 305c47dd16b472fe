// Package queue is the durable on-disk queue between the hook and the
// worker.
//
// Each (target, path) pair is one small JSON file in <dir>/entries, named
// after the pair so that queueing the same pair twice leaves one entry. The
// hook writes an entry to <dir>/tmp, fsyncs it, links it into entries/ and
// fsyncs that directory before it returns: a SIGKILL or a power cut after
// the hook exits loses nothing. The hook never lists entries/ (it reads at
// most the file at its pair's name, and not one larger than an entry: the
// pair then goes to a bulk file), so its cost does not grow with the
// queue.
//
// Only the worker (holding <dir>/lock) rewrites or removes entries. An entry
// that cannot be read is moved to corrupt/, one the worker gives up on by
// rule (garbage-collected, denied closure) to dropped/ with the reason:
// nothing is deleted that was not pushed.
package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

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
	bulk   bulkIndex
	// pinExists, when set (by tests), is called when AddPins found a pin
	// queued already, before it asks for it again.
	pinExists func(name string)
	// pinLinked, when set (by tests), is called when AddPins has linked
	// a new pin name into pins/.
	pinLinked func(name string)
	// pinAskRewritten, when set (by tests), is called when AddPins has
	// made the ask kept for a pin aside this push's, before it links.
	pinAskRewritten func(name string)
	// pinMovedAside, when set (by tests), is called when DropPin has
	// moved the pin name aside into tmp/, before it looks for an ask.
	pinMovedAside func(name string)
	// notified, when set (by tests), is called with the name of each
	// event Notify's watch saw, once it has woken the channel or not.
	notified func(name string)
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
	// Session is the pid of the process that ran the hook that queued
	// it (Nix): while it runs, more of its builds may come (see the
	// worker's batching). 0 when not queued by a hook.
	Session int `json:"session,omitempty"`
	// Facts are what push learnt of the path from Nix as it queued it,
	// or the hook from the .drv that built it (they never change for a
	// store path), so that the worker need not ask Nix again; nil when
	// not known.
	Facts *Facts `json:"facts,omitempty"`
	// Within is the path queued with it whose closure holds it (push
	// --closure's root): when both go in one pusher call, the pusher is
	// given only that one. "" when not known.
	Within string `json:"within,omitempty"`
	// Listed is where the path was chosen when no rule of the target's
	// chose it: for the queue, opaque data the worker reads (the store
	// path of a package list, see package pkglist). "" otherwise.
	Listed string `json:"listed,omitempty"`
	// AlsoListed are where the pair was chosen when it was queued again
	// from elsewhere (another package list naming the path): the worker
	// keeps them beside Listed as it removes the other copy (see
	// AddListed), so that the list that really depends on the path
	// counts, whichever was queued first.
	AlsoListed []string `json:"also_listed,omitempty"`
	// Pinned says that push --pin pins the path in this target: the
	// worker reads its facts as policy.ForPin says. The entry says it, not
	// only the pin's file, which push writes after the entry: a running
	// worker may decide the entry in between, and would leave a NixOS
	// system (allowSubstitutes = false) out of the cache it is to be
	// pinned in.
	Pinned bool `json:"pinned,omitempty"`

	key string
	src string // see Source
}

// MaxListed bounds the lists an entry keeps (Listed and AlsoListed): a
// path named by thousands of lists must not make its entry grow with
// them. A list past it is not kept (AddListed says so): the worker
// leaves its copy queued until the entry is decided.
const MaxListed = 8

// Listings are where the pair was chosen: Listed, then AlsoListed.
func (e *Entry) Listings() []string {
	if e.Listed == "" {
		return nil
	}
	return append([]string{e.Listed}, e.AlsoListed...)
}

// AddListed adds l to the entry's lists: changed false when it holds l
// already, full true when it holds MaxListed lists and l is left out.
func (e *Entry) AddListed(l string) (changed, full bool) {
	switch {
	case l == "" || l == e.Listed || slices.Contains(e.AlsoListed, l):
		return false, false
	case e.Listed == "":
		e.Listed = l
	case 1+len(e.AlsoListed) >= MaxListed:
		return false, true
	default:
		e.AlsoListed = append(e.AlsoListed, l)
	}
	return true, false
}

// Facts are what Nix says of a store path that the rules read.
type Facts struct {
	// NarSize is 0 when not known (the hook's entries).
	NarSize int64  `json:"nar_size"`
	Deriver string `json:"deriver,omitempty"`
	// Substitutes is what the deriver's .drv says of substitution (one
	// of policy's Subst values), "" when not read.
	Substitutes string `json:"substitutes,omitempty"`
}

// Key is the entry's file name.
func (e *Entry) Key() string { return e.key }

// Pair is what the hook hands to the queue.
type Pair struct {
	Target string
	Path   storepath.Path
	// Session, Facts, Within, Listed, Pinned: see Entry.
	Session int
	Facts   *Facts
	Within  string
	Listed  string
	Pinned  bool
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
		if err := mkdirParents(filepath.Dir(dir)); err != nil {
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

// mkdirParents makes dir and what is missing above it, private, unless
// the nearest directory above that exists is writable by another user
// (/tmp, sticky or not): there, that user could put a symlink in place of
// a directory about to be made, and MkdirAll, which goes by name, would
// make root's next directory wherever it points (/etc, a home). Below a
// directory only its owner can write, nobody else can. Each made is
// synced into its parent (see syncMade), as the queue directory is: a
// power failure must not lose the queue with what it said was queued.
func mkdirParents(dir string) error {
	if err := checkMakeable(dir); err != nil {
		return err
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := lstat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		made := os.Mkdir(d, parentMark)
		if made != nil && !errors.Is(made, fs.ErrExist) {
			return made
		}
		// Found made (by another process meanwhile): synced only when
		// it is a directory of this user's, as made here.
		fi, err := lstat(d)
		if err != nil {
			return err
		} else if !ownedByMe(fi) {
			continue
		}
		if err := syncMade(d, fi, made == nil, parentMark, parentMark); err != nil {
			return err
		}
	}
	return nil
}

// checkMakeable is mkdirParents' refusal, without making anything: CheckDir
// applies it too, so that doctor does not pass a directory Open will not
// make.
func checkMakeable(dir string) error {
	above := dir
	for {
		fi, err := os.Stat(above)
		if err == nil {
			if fi.Mode().Perm()&0o022 != 0 {
				return fmt.Errorf("%s does not exist, and %s above it is writable by other users: make it yourself, writable by its owner alone", dir, above)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		up := filepath.Dir(above)
		if up == above {
			return nil
		}
		above = up
	}
}

func (q *Queue) path(elem ...string) string {
	return filepath.Join(append([]string{q.Dir}, elem...)...)
}

// Key names the entry of a pair: the store path's hash (unique within a
// store) and a digest of the target name (which may contain '/').
func Key(target string, p storepath.Path) string {
	return p.Hash + "." + TargetDigest(target)
}

// TargetDigest is the part of an entry's name that tells its target.
func TargetDigest(target string) string {
	sum := sha256.Sum256([]byte(target))
	return hex.EncodeToString(sum[:targetDigestLen/2])
}

// targetDigestLen is the length of TargetDigest's hex.
const targetDigestLen = 12

// TargetsByDigest maps the TargetDigest of each of targets to its name:
// what tells an entry's target from its key alone (KeyDigest).
func TargetsByDigest(targets []string) map[string]string {
	m := make(map[string]string, len(targets))
	for _, t := range targets {
		m[TargetDigest(t)] = t
	}
	return m
}

// Update rewrites an entry's retry state. Its new content is fsynced
// before the rename, the rename not: a crash may lose the new attempt
// count, which only makes a retry come sooner, but the name never points
// to a file whose content was not written yet (after a power cut, on a
// file system that does not flush a file renamed over another, the
// worker would take the empty entry for corrupt and move it aside, never
// to be pushed). An entry of a bulk file moves to a bulk file of its own
// (see Apply).
func (q *Queue) Update(e *Entry) error {
	if e.src != "" {
		if r := q.Apply(Changes{Updated: []*Entry{e}}); len(r.Failed) > 0 {
			return r.Failed[e.key]
		}
		return nil
	}
	return q.replace(e, entriesDir, true, "updating queue entry")
}

// replace writes e as the file named by its key in dir, in one rename,
// its content fsynced first when sync.
func (q *Queue) replace(e *Entry, dir string, sync bool, doing string) error {
	tmp, err := q.writeEntry(e, sync)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, q.path(dir, e.key)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", doing, err)
	}
	return nil
}

// SyncEntries makes what was renamed into entries/ durable: Update does
// not, for retry state a crash may lose; a caller whose next step relies
// on the rename does.
func (q *Queue) SyncEntries() error { return syncDir(q.path(entriesDir)) }

// Remove deletes a pushed entry.
func (q *Queue) Remove(e *Entry) error {
	if e.src != "" {
		return q.Apply(Changes{Done: []*Entry{e}}).Failed[e.key]
	}
	if err := os.Remove(q.path(entriesDir, e.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing queue entry: %w", err)
	}
	return nil
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
// By the wall clock: after a step forward it may take one being written
// for old, which its writer then writes again (see tmpRewrites). A pin
// a killed worker left moved aside (DropPin) is linked back when it was
// asked for again, as DropPin would have.
func (q *Queue) CleanTmp(age time.Duration) {
	entries, _ := os.ReadDir(q.path(tmpDir))
	for _, d := range entries {
		if key, ok := strings.CutPrefix(d.Name(), pinAside); ok && !q.relinkPinAside(key) {
			continue
		}
		if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > age && !strings.HasPrefix(d.Name(), ".") {
			os.Remove(q.path(tmpDir, d.Name()))
		}
	}
}

// ChangeDirs are the directories whose changes mean an entry, a pin or
// a package list to read again came or went (a file added, renamed into
// place or removed): what a wait watches, so that it sees the queue
// empty as it does, and what wakes the worker.
func (q *Queue) ChangeDirs() []string {
	return []string{q.path(entriesDir), q.path(bulkDir), q.path(pinsDir), q.path(listsDir)}
}
