package queue

// Apply: the worker's decisions about a round's entries made durable
// together (removed, rewritten, set aside), each bulk file replaced once.
// Only the worker calls it (it owns the entries).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
)

// Changes are what the worker decided about a set of entries, made
// durable together by Apply.
type Changes struct {
	// Done leave the queue: pushed, or finished without a push.
	Done []*Entry
	// Updated have a new retry state; Apply writes them together.
	Updated []*Entry
	// Dropped move to dropped/, each with its Reason.
	Dropped []*Entry
	// Whole names the bulk files every entry of which is in these
	// changes (as the worker counts them): they are removed without
	// being read.
	Whole map[string]bool
}

// Applied says what Apply did.
type Applied struct {
	// Failed are the keys of entries whose change did not take, with
	// why: they are as they were (or, updated, maybe both).
	Failed map[string]error
	// Replaced maps a bulk file to the one that now holds its other
	// entries ("" when none are left).
	Replaced map[string]string
	// Aside counts lines of bulk files that were not entries, moved to
	// corrupt/.
	Aside int
}

// Apply makes the worker's changes durable, in bulk: updated entries are
// written together (one file, synced, for more than one), dropped ones
// are set aside in dropped/, then every entry changed leaves its old
// place, each bulk file being replaced once by the lines it keeps. clean
// names bulk files to replace even if nothing in them changed (they hold
// lines that are not entries).
func (q *Queue) Apply(c Changes, clean ...string) Applied {
	defer q.bulk.forget()
	res := Applied{Failed: map[string]error{}, Replaced: map[string]string{}}
	// kept are the bulk files that still hold an entry whose change did
	// not take: Whole must not remove them (a full disk while writing an
	// updated or dropped entry lost it with the file).
	kept := map[string]bool{}
	fail := func(e *Entry, err error) {
		res.Failed[e.key] = err
		if e.src != "" {
			kept[e.src] = true
		}
	}
	// What leaves each place: by source, the keys.
	leave := map[string]map[string]bool{}
	var singles []*Entry
	out := func(e *Entry) {
		if e.src == "" {
			singles = append(singles, e)
			return
		}
		if leave[e.src] == nil {
			leave[e.src] = map[string]bool{}
		}
		leave[e.src][e.key] = true
	}
	for _, src := range clean {
		if leave[src] == nil {
			leave[src] = map[string]bool{}
		}
	}
	switch {
	case len(c.Updated) == 1 && c.Updated[0].src == "":
		if err := q.Update(c.Updated[0]); err != nil {
			fail(c.Updated[0], err)
		}
	case len(c.Updated) > 0:
		name, err := q.writeUpdated(c.Updated)
		for _, e := range c.Updated {
			if err != nil {
				fail(e, err)
				continue
			}
			old := *e
			e.src = name
			if old.src == "" {
				singles = append(singles, &old)
			} else {
				out(&old)
			}
		}
	}
	for _, e := range c.Dropped {
		if err := q.setDropped(e); err != nil {
			fail(e, err)
			continue
		}
		out(e)
	}
	for _, e := range c.Done {
		out(e)
	}
	for _, e := range singles {
		if err := os.Remove(q.path(entriesDir, e.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fail(e, fmt.Errorf("removing queue entry: %w", err))
		}
	}
	for src, keys := range leave {
		if c.Whole[src] && bulkName(src) && !kept[src] {
			if err := os.Remove(q.path(bulkDir, src)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				for k := range keys {
					res.Failed[k] = fmt.Errorf("removing bulk file: %w", err)
				}
				continue
			}
			res.Replaced[src] = ""
			continue
		}
		name, aside, err := q.replaceBulk(src, keys)
		res.Aside += aside
		if err != nil {
			for k := range keys {
				res.Failed[k] = err
			}
			continue
		}
		res.Replaced[src] = name
	}
	return res
}

// writeUpdated writes entries with their new state as one bulk file,
// synced with its directory before their old places are removed.
func (q *Queue) writeUpdated(es []*Entry) (string, error) {
	if err := mkdirPrivate(q.path(bulkDir), false); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range es {
		if err := enc.Encode(e); err != nil {
			return "", err
		}
	}
	name, err := q.writeBulk(buf.Bytes())
	if err == nil {
		err = syncDir(q.path(bulkDir))
	}
	if err != nil {
		return "", fmt.Errorf("updating queue entries: %w", err)
	}
	return name, nil
}

// replaceBulk removes the lines of the keys given from a bulk file: the
// others go to a new file, synced, which then replaces it ("" when none
// are left). Lines that are not entries go to corrupt/.
func (q *Queue) replaceBulk(src string, keys map[string]bool) (string, int, error) {
	if !bulkName(src) {
		return "", 0, fmt.Errorf("bulk file: bad name %q", src)
	}
	file := q.path(bulkDir, src)
	f, _, err := safeopen.Open(file, safeopen.Options{NoFollow: true})
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("reading bulk file: %w", err)
	}
	var keep, bad bytes.Buffer
	lp := newLineParser()
	aside := 0
	err = eachLine(f, func(line []byte) {
		e, key := lp.parse(line)
		switch {
		case e == nil:
			aside++
			bad.Write(line)
			bad.WriteByte('\n')
		case !keys[key]:
			keep.Write(line)
			keep.WriteByte('\n')
		}
	})
	f.Close()
	if err != nil {
		return "", 0, fmt.Errorf("reading bulk file %s: %w", file, err)
	}
	if aside > 0 {
		if err := q.setAsideLines(src, bad.Bytes()); err != nil {
			return "", 0, err
		}
	}
	name := ""
	if keep.Len() > 0 {
		if name, err = q.writeBulk(keep.Bytes()); err == nil {
			err = syncDir(q.path(bulkDir))
		}
		if err != nil {
			return "", aside, fmt.Errorf("rewriting bulk file %s: %w", file, err)
		}
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if name != "" {
			os.Remove(q.path(bulkDir, name))
		}
		return "", aside, fmt.Errorf("removing bulk file: %w", err)
	}
	return name, aside, nil
}

// setAsideLines keeps the lines of a bulk file that are not entries in
// corrupt/, as the worker keeps an unreadable entry file.
func (q *Queue) setAsideLines(src string, lines []byte) error {
	if err := mkdirPrivate(q.path(corruptDir), false); err != nil {
		return err
	}
	name := asideName(src)
	tmp, err := q.writeTmp(name, lines, false)
	if err != nil {
		return err
	}
	dst := q.path(corruptDir, name)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("setting aside lines of %s: %w", src, err)
	}
	return nil
}
