// Package history is the record of what the worker did with each queued
// path: pushed, dropped (with the reason) or failed (with the error), per
// target, with the time and the duration of the pusher call. It is a JSON
// lines file in the queue directory, appended with O_APPEND and rotated to
// <file>.1 past a size, so that it stays bounded on a builder that runs
// for months. Only the worker writes it (it holds the queue lock); `log`,
// `status` and `wait` read it.
//
// Losing a line loses no path (the queue is the durable part), so writes
// are not fsynced. Errors recorded here come from the pusher, which
// redacts the token before any output leaves it; nothing else holding a
// secret is written.
package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/logfile"
)

// File is the history's name in the queue directory; the rotated part is
// File+".1".
const File = "history.jsonl"

// MaxSize is the size past which the file is rotated: the history holds
// at most twice this (about 40000 records of 200 bytes); a batch whose
// records pass it goes whole into one file (see Append), so each file holds
// at most the larger of this and one batch's records.
const MaxSize = 4 << 20

// maxRecord bounds one line: a record carries at most an error of
// maxReason bytes, each at most 6 once JSON escapes it (`\u003c` for
// '<', `\ufffd` for a byte that is not UTF-8), so a longer line is not
// ours.
const (
	maxReason = 2000
	maxRecord = 16 << 10
	// minLine is shorter than any line the worker writes (its time,
	// target, store path and outcome alone take more).
	minLine = 64
)

// Outcomes.
const (
	Pushed  = "pushed"
	Dropped = "dropped"
	Failed  = "failed"
	// Upstream: not pushed because an upstream cache already has the
	// path (issue 13's upstream rule); not a failure.
	Upstream = "upstream"
	// The outcomes of a pin (push --pin): made, a cachix pin call that
	// failed (retried), and given up on with the reason (its root was
	// dropped, or is gone from the store).
	Pinned     = "pinned"
	PinFailed  = "pin-failed"
	PinDropped = "pin-dropped"
)

// Record is one path's outcome.
type Record struct {
	Time    time.Time `json:"time"`
	Target  string    `json:"target"`
	Path    string    `json:"path"`
	Outcome string    `json:"outcome"`
	// Reason is why a path was dropped, or the pusher's error; for a
	// pushed path, what its closure uploaded that the rules deny
	// (closure_deny = "push").
	Reason string `json:"reason,omitempty"`
	// Listed is the package list that chose the path, when no rule of
	// the target did.
	Listed string `json:"listed_in,omitempty"`
	// Batch is how many paths the pusher call held, and Duration how
	// long it took (none for a drop, which happens before the call).
	Batch    int           `json:"batch,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Pin is a pin's name and keep option (`"laptop-system"
	// --keep-revisions 3`), for the pin outcomes.
	Pin string `json:"pin,omitempty"`
}

// Append writes records to the history in dir, rotating it first when it
// would pass maxSize. All records go in one write.
func Append(dir string, maxSize int64, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	file := filepath.Join(dir, File)
	// About 200 bytes a record: one allocation for a batch's lines.
	buf := make([]byte, 0, 1+200*len(recs))
	// A line cut short (the disk filled up in the middle of an append,
	// a crash left the end of the file unwritten) would run into this
	// batch's first record, and neither would parse: end it first.
	if endsTorn(file) {
		buf = append(buf, '\n')
	}
	for _, r := range recs {
		if len(r.Reason) > maxReason {
			// Before a UTF-8 character or an escape (the pusher's
			// \x1b, %q's) rather than inside it: half of either
			// reads as other text.
			r.Reason = r.Reason[:escape.Cut(r.Reason, maxReason)] + "…"
		}
		r.Time = r.Time.UTC()
		var err error
		if buf, err = encodeRecord(buf, &r); err != nil {
			return fmt.Errorf("encoding history record: %w", err)
		}
	}
	// Rotated as the worker's log is, once: a batch whose records pass
	// the bound (some 20,000 short paths fill a pusher call's argv) goes
	// whole into the new file. Written in parts, each part rotated the
	// one before it over every earlier record, and `wait`'s Follower,
	// which follows one rotation, missed all but the last part.
	f, err := logfile.Open(file, max(maxSize, int64(len(buf))))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(buf)
	return err
}

// endsTorn reports whether file's last line has no newline. Only the
// worker appends (it holds the queue lock), so the end cannot move before
// the append that follows.
func endsTorn(file string) bool {
	f, fi, err := openRead(file)
	if err != nil {
		return false // Open says what is wrong with it
	}
	defer f.Close()
	if fi.Size() == 0 {
		return false
	}
	var last [1]byte
	_, err = f.ReadAt(last[:], fi.Size()-1)
	return err == nil && last[0] != '\n'
}

func openRead(file string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", file)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// Read returns every record, oldest first: the rotated part, then the
// current file. A line that does not parse is skipped; a file that
// cannot be read is an error, the other file's records still returned.
func Read(dir string) ([]Record, error) {
	var out []Record
	var errs []error
	// Both files are opened before either is read, the current one
	// first: a rotation in between moves it to .1, where it is the same
	// file, read once. Opened the other way round, the file rotated in
	// between would be read as neither.
	names := []string{File + ".1", File}
	var files [2]*os.File
	var infos [2]os.FileInfo
	for i := len(names) - 1; i >= 0; i-- {
		file := filepath.Join(dir, names[i])
		f, fi, err := openRead(file)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("reading %s: %w", file, err))
		}
		files[i], infos[i] = f, fi
	}
	if files[0] != nil && files[1] != nil && os.SameFile(infos[0], infos[1]) {
		files[0].Close()
		files[0] = nil
	}
	for i, f := range files {
		if f == nil {
			continue
		}
		// A file grown past the bound by someone else is read up to it.
		data := readAt(f, 0, infos[i].Size())
		f.Close()
		out = appendRecords(out, data)
	}
	return out, errors.Join(errs...)
}

// readAt reads what f holds from off, up to size bytes of it and at most
// twice MaxSize, in one buffer: grown as it was read, a batch's 2 MB
// cost more in copying than in parsing.
func readAt(f *os.File, off, size int64) []byte {
	n := min(max(size-off, 0), 2*MaxSize)
	buf := make([]byte, n)
	got, _ := f.ReadAt(buf, off)
	return buf[:got]
}

// appendRecords appends the records of data's whole lines. A line that
// does not parse, or is longer than a record can be, is skipped.
func appendRecords(out []Record, data []byte) []Record {
	// Sized by the bytes as well as the lines: a file of empty lines
	// (someone else's, or damaged) would otherwise reserve a Record for
	// each byte, gigabytes for the 8 MiB read.
	out = slices.Grow(out, min(bytes.Count(data, []byte{'\n'}), len(data)/minLine))
	for len(data) > 0 {
		line := data
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			data = nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		if len(line) > maxRecord {
			continue
		}
		rec, ok := parseRecord(line)
		if ok || json.Unmarshal(line, &rec) == nil {
			if rec.Path != "" {
				out = append(out, rec)
			}
		}
	}
	return out
}

// Follower reads the records appended since it started, across
// rotations: `wait` uses it to count what was pushed while it waited.
type Follower struct {
	file string
	ino  uint64
	off  int64
}

// Follow starts following the history in dir at its current end.
func Follow(dir string) *Follower {
	fl := &Follower{file: filepath.Join(dir, File)}
	if f, fi, err := openRead(fl.file); err == nil {
		fl.ino, fl.off = inode(fi), fi.Size()
		f.Close()
	}
	return fl
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// Next returns the records appended since the last call.
func (fl *Follower) Next() []Record {
	f, fi, err := openRead(fl.file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Record
	if ino := inode(fi); ino != fl.ino {
		// Rotated: the rest of the file we were reading is now .1.
		if fl.ino != 0 {
			if old, ofi, err := openRead(fl.file + ".1"); err == nil {
				if inode(ofi) == fl.ino {
					out = fl.readFrom(old, out)
				}
				old.Close()
			}
		}
		fl.ino, fl.off = ino, 0
	}
	if fi.Size() < fl.off {
		fl.off = 0
	}
	return fl.readFrom(f, out)
}

// readFrom reads whole lines from fl.off, leaving a partial last line for
// the next call.
func (fl *Follower) readFrom(f *os.File, out []Record) []Record {
	fi, err := f.Stat()
	if err != nil {
		return out
	}
	data := readAt(f, fl.off, fi.Size())
	end := bytes.LastIndexByte(data, '\n') + 1
	fl.off += int64(end)
	return appendRecords(out, data[:end])
}
