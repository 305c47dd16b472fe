package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
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
