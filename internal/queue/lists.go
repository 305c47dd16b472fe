package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Unread package lists: a list the hook could not read for a reason of
// the moment (EMFILE, EIO) is built once, so the paths it names would
// never be queued. The hook leaves one small file for it in <dir>/lists,
// named by the list's hash and as durable as an entry (written to tmp/,
// fsynced, linked, the directory fsynced); only the worker reads it again,
// queues what the list selects, and removes the file, or drops it.
const listsDir = "lists"

// MaxUnreadLists bounds the files in lists/: past it the hook says the
// list is lost rather than grow the directory without end. A disk that
// fails every read leaves few lists: one a list build.
const MaxUnreadLists = 1000

// MaxSkippedLists bounds lower the files in lists/ when the record is of
// a list the hook did not read, past its bounds (AddSkippedList): any
// user may build lists named past them, 64 a build, and fill lists/ so
// until the worker drains it. The rest is kept for lists that could not
// be read, which no user can make at will.
const MaxSkippedLists = MaxUnreadLists - 200

// maxUnreadSize bounds one file: a path, times, an error cut short.
const maxUnreadSize = 4 << 10

// UnreadList is a package list to read again.
type UnreadList struct {
	List        string    `json:"list"`
	Queued      time.Time `json:"queued"`
	Session     int       `json:"session,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`

	key string
	// path is List parsed, as ReadUnreadList checked it.
	path storepath.Path
}

// AddUnreadList records durably that list could not be read, why (cut
// short) and by which session (the hook's Nix). A list recorded already
// is left as it is: its retry state is the worker's.
func (q *Queue) AddUnreadList(list storepath.Path, why string, session int, now time.Time) error {
	return q.addUnreadList(list, why, session, now, MaxUnreadLists)
}

// AddSkippedList is AddUnreadList for a list the hook did not read, past
// what one run reads: refused once lists/ holds MaxSkippedLists.
func (q *Queue) AddSkippedList(list storepath.Path, why string, session int, now time.Time) error {
	return q.addUnreadList(list, why, session, now, MaxSkippedLists)
}

func (q *Queue) addUnreadList(list storepath.Path, why string, session int, now time.Time, limit int) error {
	dir := q.path(listsDir)
	if err := mkdirPrivate(dir, false); err != nil {
		return err
	}
	if _, err := os.Lstat(q.path(listsDir, list.Hash)); err == nil {
		return nil
	}
	if names, err := q.dirNames(listsDir); err != nil {
		return err
	} else if len(names) >= limit {
		return fmt.Errorf("%s holds %d package lists to read again already, the most it keeps", dir, len(names))
	}
	u := UnreadList{List: list.String(), Queued: now.UTC(), Session: session, LastError: cutError(why, 1000)}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	tmp, err := q.writeTmp("list", append(data, '\n'), true)
	if err != nil {
		return err
	}
	err = os.Link(tmp, q.path(listsDir, list.Hash))
	os.Remove(tmp)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("recording package list %s to read again: %w", list, err)
	}
	return syncDir(dir)
}

// UnreadListNames lists the files in lists/ without reading them.
func (q *Queue) UnreadListNames() ([]string, error) {
	return q.dirNames(listsDir)
}

// ReadUnreadList reads one file of lists/. One that is not such a file
// (a link, garbage, another name) is an error wrapping ErrCorrupt; an
// error of the moment is not.
func (q *Queue) ReadUnreadList(name string) (*UnreadList, error) {
	file := q.path(listsDir, name)
	data, err := safeopen.ReadFile(file, safeopen.Options{NoFollow: true, MaxSize: maxUnreadSize})
	if err != nil {
		if errors.Is(err, safeopen.ErrSymlink) || errors.Is(err, safeopen.ErrNotRegular) || errors.Is(err, safeopen.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, file, err)
		}
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	u := &UnreadList{key: name}
	if err := json.Unmarshal(data, u); err != nil {
		return nil, fmt.Errorf("%w: parsing %s: %v", ErrCorrupt, file, err)
	}
	p, err := storepath.Parse(storepath.StoreDir(), u.List)
	if err != nil || p.Hash != name {
		return nil, fmt.Errorf("%w: %s does not match its name (list %q)", ErrCorrupt, file, u.List)
	}
	u.path = p
	if fi, err := os.Lstat(file); err == nil {
		u.foldMark(fi.ModTime(), time.Now())
	}
	return u, nil
}

// foldMark takes the back-off UpdateUnreadList left in the file's
// modification time, when it could not rewrite the record, for the
// record's: one attempt more, due then. Only a time ahead of now, of
// the record's next attempt and of when it was queued is the mark: a
// record's own writes leave it before its next attempt, the hook's at
// when it was queued (so a clock set back since is not taken for one).
func (u *UnreadList) foldMark(mtime, now time.Time) {
	if !mtime.After(now) || !mtime.After(u.NextAttempt) || !mtime.After(u.Queued.Add(time.Second)) {
		return
	}
	u.Attempts++
	u.NextAttempt = mtime
}

// UpdateUnreadList rewrites the retry state of u. When the record cannot
// be rewritten (a full disk: no room for its new copy), its back-off is
// kept in the file's modification time, which needs none (see
// foldMark): else wait, reading the record, took the list for one not
// tried yet and waited on, and a worker started anew read it at once.
// The error is returned either way.
func (q *Queue) UpdateUnreadList(u *UnreadList) error {
	err := q.rewriteUnreadList(u)
	if err == nil {
		return nil
	}
	if merr := q.markUnreadList(u); merr != nil {
		return errors.Join(err, merr)
	}
	return fmt.Errorf("%w (its back-off kept in the file's time alone)", err)
}

func (q *Queue) rewriteUnreadList(u *UnreadList) error {
	u.LastError = cutError(u.LastError, 1000)
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	tmp, err := q.writeTmp("list", append(data, '\n'), true)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, q.path(listsDir, u.key)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("updating %s: %w", q.path(listsDir, u.key), err)
	}
	return nil
}

// markUnreadList sets the modification time of u's file to its next
// attempt: a regular file alone (Chtimes follows a link).
func (q *Queue) markUnreadList(u *UnreadList) error {
	file := q.path(listsDir, u.key)
	if fi, err := os.Lstat(file); err != nil {
		return fmt.Errorf("marking %s backed off: %w", file, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("marking %s backed off: not a regular file", file)
	}
	if err := os.Chtimes(file, time.Time{}, u.NextAttempt); err != nil {
		return fmt.Errorf("marking %s backed off: %w", file, err)
	}
	return nil
}

// RemoveUnreadList removes the file name from lists/: its list was read
// and what it selects queued, or it was dropped.
func (q *Queue) RemoveUnreadList(name string) error {
	if err := os.Remove(q.path(listsDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", q.path(listsDir, name), err)
	}
	return nil
}

// SetAsideUnreadList moves a file of lists/ that is none to corrupt/.
func (q *Queue) SetAsideUnreadList(name string) error {
	if err := mkdirPrivate(q.path(corruptDir), false); err != nil {
		return err
	}
	if err := os.Rename(q.path(listsDir, name), q.path(corruptDir, asideName("list."+name))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("moving %s aside: %w", q.path(listsDir, name), err)
	}
	return nil
}

// DropUnreadList gives up on u (read by ReadUnreadList): for each of
// targets (those that take package lists), a drop of the list with
// reason in dropped/, where status, wait and log find drops; then its
// file goes.
func (q *Queue) DropUnreadList(u *UnreadList, targets []string, reason string) error {
	for _, t := range targets {
		e := &Entry{Target: t, Path: u.List, Queued: u.Queued, Attempts: u.Attempts, LastError: u.LastError, Session: u.Session, Reason: reason, key: Key(t, u.path)}
		if err := q.setDropped(e); err != nil {
			return err
		}
	}
	return q.RemoveUnreadList(u.key)
}

// Key is the name of u's file.
func (u *UnreadList) Key() string { return u.key }

// Path is u's list.
func (u *UnreadList) Path() storepath.Path { return u.path }

// cutError keeps s to about n bytes, cut before a UTF-8 character
// rather than inside it: JSON would write the half as U+FFFD, and status
// and wait show the error.
func cutError(s string, n int) string {
	if len(s) > n {
		return s[:escape.Cut(s, n)] + "…"
	}
	return s
}
