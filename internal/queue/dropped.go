package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// ListDropped reads the entries the worker dropped (dropped/), each with
// its reason. Unreadable files are skipped: they are only a record.
func (q *Queue) ListDropped() ([]*Entry, error) {
	return q.listDir(droppedDir)
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
	if err := mkdirPrivate(q.path(droppedDir), false); err != nil {
		return fmt.Errorf("dropping queue entry: %w", err)
	}
	e.Reason = reason
	if err := q.replace(e, droppedDir, "dropping queue entry"); err != nil {
		return err
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
