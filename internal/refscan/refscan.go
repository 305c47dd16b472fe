// Package refscan finds which store paths a store path refers to, the way
// Nix finds references: a path refers to another exactly when that one's
// 32-character hash part occurs in its file names, file contents or
// symlink targets.
//
// It runs on the hook's path (a build waits for it), on outputs a build
// just wrote, which anyone may have crafted. So it costs O(bytes) whatever
// the number of hashes looked for (each position is looked up in a set,
// as Nix's RefScanSink does, never searched once per hash), and every
// bound is checked as it goes: the deadline per chunk read and per batch
// of directory entries, the file count per entry, the byte count per
// file. A directory is read a batch at a time, never whole, and nothing
// is followed: a symlink's target is text to scan, not a place to go.
package refscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// ErrBudget is returned when a scan would pass its Budget.
var ErrBudget = errors.New("outputs too large to scan for references on the build's path")

// Budget is what is left of a scan's bounds; one Budget may be shared by
// several scans (the outputs of one build), which spend it in turn.
type Budget struct {
	Bytes int64     // file contents still to be read
	Files int64     // directory entries still to be looked at
	Until time.Time // deadline
	// Now is the clock Until is checked on, time.Now when nil: a test
	// moves it on at each check, to stop a scan mid-file whatever the
	// machine's speed.
	Now func() time.Time
}

func (b *Budget) spend(bytes, files int64) error {
	b.Bytes -= bytes
	b.Files -= files
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	if b.Bytes < 0 || b.Files < 0 || now().After(b.Until) {
		return ErrBudget
	}
	return nil
}

// Chunk is how much of a file is read at once, and so how often the
// deadline is checked while reading.
const Chunk = 256 << 10

// dirBatch is how many directory entries are read at once.
const dirBatch = 256

const hashLen = storepath.HashLen

// isBase32 marks the bytes of the nix-base32 alphabet.
var isBase32 = func() (t [256]bool) {
	for i := 0; i < len(storepath.Base32); i++ {
		t[storepath.Base32[i]] = true
	}
	return t
}()

// Scanner looks for a fixed set of hash parts.
type Scanner struct {
	index map[string]int
	n     int
	// bloom holds a bit per hash of a window's last 8 bytes: most
	// windows of base32 text (a crafted file may be nothing else) are
	// ruled out by one bit test, not a map lookup.
	bloom []uint64
	shift uint
}

// New returns a Scanner for hashes (32-character hash parts; anything
// else is never found). Of duplicates, the first index is reported.
func New(hashes []string) *Scanner {
	bits := uint(16) // at least 64 Kibit, and 16 bits a hash
	for 1<<bits < 16*len(hashes) {
		bits++
	}
	s := &Scanner{index: make(map[string]int, len(hashes)), n: len(hashes), bloom: make([]uint64, (1<<bits)/64), shift: 64 - bits}
	for i, h := range hashes {
		if _, dup := s.index[h]; len(h) == hashLen && !dup {
			s.index[h] = i
			b := s.bitOf(binary.LittleEndian.Uint64([]byte(h[hashLen-8:])))
			s.bloom[b/64] |= 1 << (b % 64)
		}
	}
	return s
}

// bitOf is the bloom bit of a window whose last 8 bytes, little-endian,
// are x.
func (s *Scanner) bitOf(x uint64) uint64 {
	return (x * 0x9e3779b97f4a7c15) >> s.shift
}

// scan is one Scan's state.
type scan struct {
	s     *Scanner
	skip  int // index of a hash not to report (the scanned path's own), or -1
	found []bool
	left  int
	buf   []byte
	b     *Budget
}

// mark records every wanted hash that occurs in data: one pass, a table
// lookup per byte, and for a run of 32 base32 characters a bit test,
// then a set lookup only when the bit is set. Names come as strings,
// contents as bytes: neither is copied.
func mark[T string | []byte](sc *scan, data T) {
	s := sc.s
	run := 0
	var x uint64 // the last 8 bytes, little-endian
	for e := 0; e < len(data); e++ {
		c := data[e]
		x = x>>8 | uint64(c)<<56
		if !isBase32[c] {
			run = 0
			continue
		}
		if run++; run < hashLen {
			continue
		}
		if b := s.bitOf(x); s.bloom[b/64]&(1<<(b%64)) == 0 {
			continue
		}
		if k, ok := s.index[string(data[e+1-hashLen:e+1])]; ok && k != sc.skip && !sc.found[k] {
			sc.found[k] = true
			sc.left--
		}
	}
}

func (sc *scan) done() bool { return sc.left <= 0 }

// Scan returns, for each hash the Scanner was made with (by index), whether
// it occurs in the store path root: a file, a symlink or a directory tree.
// The hash at index skip (the path's own; -1 for none) is never reported.
// It stops early once every hash is found, and returns ErrBudget (and no
// answer) when the budget runs out first.
func (s *Scanner) Scan(root string, skip int, b *Budget) ([]bool, error) {
	// Before what costs as much as the hashes: a build of 100,000
	// outputs has each scanned for the others, under one deadline.
	if err := b.spend(0, 0); err != nil {
		return nil, err
	}
	sc := &scan{s: s, skip: skip, found: make([]bool, s.n), left: len(s.index), b: b}
	for _, k := range s.index {
		if k == skip {
			sc.left--
		}
	}
	if sc.done() {
		return sc.found, nil
	}
	err := sc.root(root)
	if errors.Is(err, errDone) {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return sc.found, nil
}

var errDone = errors.New("every hash found")

func (sc *scan) root(root string) error {
	if err := sc.b.spend(0, 1); err != nil {
		return err
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return sc.link(unix.AT_FDCWD, root, "")
	case fi.Mode().IsRegular():
		return sc.file(unix.AT_FDCWD, root, "")
	case fi.IsDir():
		return sc.tree(root)
	}
	return nil // a store path holds nothing else; nothing to scan
}

// link scans the target of the symlink name in the directory dirfd (dir
// for messages, "" when name is the whole path).
func (sc *scan) link(dirfd int, name, dir string) error {
	if sc.buf == nil {
		sc.buf = make([]byte, hashLen-1+Chunk)
	}
	// A target is at most PATH_MAX (4096) bytes; a chunk holds it.
	n, err := unix.Readlinkat(dirfd, name, sc.buf)
	if err != nil {
		return &fs.PathError{Op: "readlink", Path: filepath.Join(dir, name), Err: err}
	}
	mark(sc, sc.buf[:n])
	return nil
}

// tree scans a directory tree without recursion (a crafted depth costs no
// stack) and without holding more than one directory open: the
// subdirectories still to read are a list of paths, bounded by the entry
// budget.
func (sc *scan) tree(root string) error {
	todo := []string{root}
	for len(todo) > 0 {
		dir := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		subdirs, err := sc.dir(dir)
		if err != nil {
			return err
		}
		todo = append(todo, subdirs...)
	}
	return nil
}

// dir scans one directory's entries, a batch at a time, and returns its
// subdirectories. Entries are opened and read relative to the directory's
// descriptor: nothing but a subdirectory costs a path.
func (sc *scan) dir(dir string) ([]string, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd := int(f.Fd())
	var subdirs []string
	for {
		ents, err := f.ReadDir(dirBatch)
		if err := sc.b.spend(0, int64(len(ents))); err != nil {
			return nil, err
		}
		for _, d := range ents {
			name := d.Name()
			mark(sc, name)
			var ferr error
			switch t := d.Type(); {
			case t.IsDir():
				subdirs = append(subdirs, filepath.Join(dir, name))
			case t&fs.ModeSymlink != 0:
				ferr = sc.link(fd, name, dir)
			case t.IsRegular():
				ferr = sc.file(fd, name, dir)
			}
			if ferr != nil {
				return nil, ferr
			}
			if sc.done() {
				return nil, errDone
			}
		}
		if err == io.EOF || len(ents) == 0 && err == nil {
			return subdirs, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// file scans the contents of the regular file name in the directory
// dirfd, in chunks that overlap by one byte less than a hash part, so
// that none is missed at a boundary (dir for messages, as for link).
func (sc *scan) file(dirfd int, name, dir string) error {
	path := func() string { return filepath.Join(dir, name) }
	// Never block in open: a store path holds no FIFO, but nothing here
	// is trusted.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path(), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path(), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", path())
	}
	if err := sc.b.spend(st.Size, 0); err != nil {
		return err
	}
	if sc.buf == nil {
		sc.buf = make([]byte, hashLen-1+Chunk)
	}
	const keep = hashLen - 1
	have := 0
	for {
		n, err := unix.Read(fd, sc.buf[have:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "read", Path: path(), Err: err}
		}
		if n == 0 {
			return nil
		}
		mark(sc, sc.buf[:have+n])
		if sc.done() {
			return errDone
		}
		have += n
		if have > keep {
			copy(sc.buf, sc.buf[have-keep:have])
			have = keep
		}
		if err := sc.b.spend(0, 0); err != nil {
			return err
		}
	}
}
