package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
		if e, err := readEntry(q.path(sub, n), n); err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}
