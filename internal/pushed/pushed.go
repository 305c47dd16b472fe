// Package pushed is the record of what was pushed to each target, so that
// the hook, `push` and the worker can leave out a path that already went
// there without starting a pusher: after a `nixos-rebuild switch`, nearly
// all of a closure of thousands of paths was pushed before.
//
// A record is one file per target destination in <queue dir>/pushed/: a
// fixed-size table of 2^15 buckets of 8 slots (8 MiB at most, sparse until
// used). A slot holds a path's hash (the 160 bits of its 32 nix-base32
// characters), when it was recorded, and a checksum. Looking a path up
// reads one 256-byte bucket at an offset the hash gives, so the hook's
// cost does not grow with the record; a full bucket forgets its oldest
// slot, so the file never grows.
//
// The record only ever saves work: a path it forgets, or a slot torn by a
// crash (its checksum fails), is simply pushed again, which the pushers
// make cheap (cachix and nix copy skip what the destination has). So it is
// written only by the worker (which holds the queue lock), after a push
// succeeded, and read without a lock; a missing or damaged file is an
// empty record, rebuilt as paths are pushed. A record older than the
// caller's maximum age counts as absent: a cache may have garbage-collected
// the path since (Cachix does, by last access); so does one stamped more
// than that age in the future (a clock that was set ahead).
package pushed

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Dir is the records' directory inside the queue directory.
const Dir = "pushed"

const (
	magic       = "cfhpush1"
	headerSize  = 4096 // the header has a page of its own
	buckets     = 1 << 15
	slotsPer    = 8
	slotSize    = 32 // hash 20, checksum 4, time 8
	bucketSize  = slotsPer * slotSize
	fileSize    = headerSize + buckets*bucketSize
	hashBytes   = 20
	checksumOff = hashBytes
	timeOff     = hashBytes + 4
)

// Capacity is how many paths a record holds before it forgets the
// oldest of a bucket.
const Capacity = buckets * slotsPer

// castagnoli is made on first use, not at package init: the hook links
// this package, and building the table costs 0.2 ms of every build's
// hook run even when no record is read.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Hash is a store path's hash part in binary.
type Hash [hashBytes]byte

// ParseHash decodes the 32 nix-base32 characters of a store path's hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != storepath.HashLen {
		return h, fmt.Errorf("store path hash %q: want %d characters", s, storepath.HashLen)
	}
	var acc uint64
	bits, n := 0, 0
	for i := 0; i < storepath.HashLen; i++ {
		v := strings.IndexByte(storepath.Base32, s[i])
		if v < 0 {
			return h, fmt.Errorf("store path hash %q: %q is not nix-base32", s, s[i])
		}
		acc = acc<<5 | uint64(v)
		bits += 5
		for bits >= 8 {
			bits -= 8
			h[n] = byte(acc >> bits)
			n++
		}
	}
	return h, nil
}

func (h Hash) bucket() int64 {
	return int64(binary.LittleEndian.Uint32(h[:4]) % buckets)
}

// Record is one target's record. Lookups may run concurrently with the
// worker's writes: a torn slot fails its checksum and reads as absent.
type Record struct {
	f      *os.File
	maxAge time.Duration
	write  bool
}

// File names the record of a destination. key identifies the
// destination (see config.Target.RecordKey): a digest, so that nothing
// of a store URI reaches a file name.
func File(queueDir, key string) string {
	return filepath.Join(queueDir, Dir, key)
}

// OpenRead opens a record for lookups. A record that does not exist, or
// that is not one, is empty: (nil, nil), on which Has is always false.
// maxAge bounds how old a record may be to count (0: any age).
func OpenRead(queueDir, key string, maxAge time.Duration) (*Record, error) {
	f, err := os.OpenFile(File(queueDir, key), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the record of pushed paths: %w", err)
	}
	r := &Record{f: f, maxAge: maxAge}
	if !r.valid() {
		f.Close()
		return nil, nil
	}
	return r, nil
}

// OpenWrite opens (or creates) a record for the worker. A file that is
// not a record (damaged header, wrong size, not a regular file) is
// replaced by an empty one.
func OpenWrite(queueDir, key string, maxAge time.Duration) (*Record, error) {
	dir := filepath.Join(queueDir, Dir)
	// Not synced into the queue directory, nor is the record's name or
	// a slot written: a power cut may lose the record, which only has
	// paths pushed again (the pushers skip what the cache has), never
	// one left out. An fsync each would cost every push for nothing
	// lost. Nor marked unsynced as the queue's own are: nothing there
	// needs the name durable.
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	// The queue directory is the worker's own (0700, checked by the
	// queue); its pushed/ must be too: a record decides what is not
	// uploaded.
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0) {
		return nil, fmt.Errorf("%s is not the worker's own (owner uid %d, mode %v): remove it", dir, st.Uid, fi.Mode().Perm())
	}
	name := File(queueDir, key)
	open := func() (*os.File, error) {
		return os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	}
	f, err := open()
	if err == nil {
		if fi, serr := f.Stat(); serr != nil || !fi.Mode().IsRegular() {
			f.Close()
			f, err = nil, fmt.Errorf("not a regular file")
		}
	}
	if err != nil {
		// A symlink, a FIFO, a directory planted there: not ours, and
		// the record is only a cache, so replace it.
		if rerr := os.RemoveAll(name); rerr != nil {
			return nil, fmt.Errorf("opening the record of pushed paths %s: %w", name, err)
		}
		if f, err = open(); err != nil {
			return nil, fmt.Errorf("opening the record of pushed paths %s: %w", name, err)
		}
	}
	r := &Record{f: f, maxAge: maxAge, write: true}
	if !r.valid() {
		if err := r.reset(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *Record) valid() bool {
	fi, err := r.f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != fileSize {
		return false
	}
	var hdr [len(magic)]byte
	_, err = r.f.ReadAt(hdr[:], 0)
	return err == nil && string(hdr[:]) == magic
}

// reset makes the file an empty record: truncated to nothing, then sized
// (sparse) and stamped, and synced so that a crash leaves either the old
// file or a valid empty one.
func (r *Record) reset() error {
	name := r.f.Name()
	if err := r.f.Truncate(0); err != nil {
		return fmt.Errorf("resetting %s: %w", name, err)
	}
	if err := r.f.Truncate(fileSize); err != nil {
		return fmt.Errorf("resetting %s: %w", name, err)
	}
	if _, err := r.f.WriteAt([]byte(magic), 0); err != nil {
		return fmt.Errorf("resetting %s: %w", name, err)
	}
	return r.f.Sync()
}

// Close closes the record; a nil record is fine.
func (r *Record) Close() error {
	if r == nil {
		return nil
	}
	return r.f.Close()
}

// Has reports whether h was recorded, recently enough. A nil record has
// nothing.
func (r *Record) Has(h Hash, now time.Time) bool {
	if r == nil {
		return false
	}
	var b [bucketSize]byte
	if _, err := r.f.ReadAt(b[:], headerSize+h.bucket()*bucketSize); err != nil {
		return false
	}
	for i := 0; i < slotsPer; i++ {
		s := b[i*slotSize : (i+1)*slotSize]
		if slotHash(s) == h && slotOK(s) {
			return r.fresh(s, now)
		}
	}
	return false
}

func slotHash(s []byte) (h Hash) {
	copy(h[:], s[:hashBytes])
	return h
}

func slotOK(s []byte) bool {
	return binary.LittleEndian.Uint32(s[checksumOff:]) == checksum(s)
}

// checksum covers the hash and the time, so that a torn slot never
// passes for another path or another age.
func checksum(s []byte) uint32 {
	t := castagnoli()
	c := crc32.Update(0, t, s[:hashBytes])
	return crc32.Update(c, t, s[timeOff:slotSize])
}

func (r *Record) fresh(s []byte, now time.Time) bool {
	if r.maxAge <= 0 {
		return true
	}
	at := time.Unix(int64(binary.LittleEndian.Uint64(s[timeOff:])), 0)
	// A time a little ahead of now (the clock stepped back) still counts:
	// dropping every record on a small step would push everything again.
	// One more than maxAge ahead does not: a worker that once ran with
	// its clock years ahead would otherwise keep those paths out for
	// years after the cache collected them. Either way a wrong answer
	// costs at most a push the cache skips.
	age := now.Sub(at)
	return age <= r.maxAge && age >= -r.maxAge
}

// Add records hashes as pushed at now. Each touched bucket is written
// whole, in one write: the new hash first, the others after it, and a
// full bucket forgets its last (oldest) slot. The file is not synced: a
// record lost in a crash only costs a push the destination skips (see
// the package doc), and a sync of the megabytes a batch of 10,000
// touches was most of the time between the pusher's end and its entries
// leaving the queue (issue 22).
func (r *Record) Add(hashes []Hash, now time.Time) error {
	if !r.write {
		return errors.New("record opened read-only")
	}
	if len(hashes) == 0 {
		return nil
	}
	// By bucket: one sorted copy rather than a map of slices.
	hs := slices.Clone(hashes)
	slices.SortFunc(hs, func(a, b Hash) int { return cmp.Compare(a.bucket(), b.bucket()) })
	// Buckets are read and written a window at a time: a batch of 10,000
	// paths touches some 8,000 buckets, which cost a read and a write
	// each (0.3 s under load); a window costs one of each.
	win := make([]byte, 0, windowBuckets*bucketSize)
	for len(hs) > 0 {
		first := hs[0].bucket()
		n := 1
		for n < len(hs) && hs[n].bucket()-first < windowBuckets {
			n++
		}
		last := hs[n-1].bucket()
		win = win[:(last-first+1)*bucketSize]
		off := int64(headerSize) + first*bucketSize
		if _, err := r.f.ReadAt(win, off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", r.f.Name(), err)
		}
		for group := hs[:n]; len(group) > 0; {
			bi := group[0].bucket()
			k := 1
			for k < len(group) && group[k].bucket() == bi {
				k++
			}
			fillBucket(win[(bi-first)*bucketSize:(bi-first+1)*bucketSize], group[:k], now)
			group = group[k:]
		}
		if _, err := r.f.WriteAt(win, off); err != nil {
			return fmt.Errorf("writing %s: %w", r.f.Name(), err)
		}
		hs = hs[n:]
	}
	return nil
}

// windowBuckets is how many buckets Add reads and writes at once (64 KiB).
const windowBuckets = 256

// fillBucket puts hashes at the front of bucket b, newest first, keeping
// its valid slots that are not being added after them; a full bucket
// forgets its last (oldest) slots. A bucket holds a handful of hashes:
// they are compared in place, not through maps.
func fillBucket(b []byte, hashes []Hash, now time.Time) {
	var nb [bucketSize]byte
	n := 0
	has := func(h []byte) bool {
		for i := 0; i < n; i++ {
			if string(nb[i*slotSize:i*slotSize+hashBytes]) == string(h) {
				return true
			}
		}
		return false
	}
	for i := range hashes {
		if n == slotsPer {
			break
		}
		if !has(hashes[i][:]) {
			writeSlot(nb[n*slotSize:(n+1)*slotSize], hashes[i], now)
			n++
		}
	}
	added := n
	for i := 0; i < slotsPer && n < slotsPer; i++ {
		s := b[i*slotSize : (i+1)*slotSize]
		if !slotOK(s) || isZero(s) {
			continue
		}
		old := false
		for j := 0; j < added; j++ {
			if string(nb[j*slotSize:j*slotSize+hashBytes]) == string(s[:hashBytes]) {
				old = true
				break
			}
		}
		if !old {
			copy(nb[n*slotSize:], s)
			n++
		}
	}
	copy(b, nb[:])
}

func writeSlot(s []byte, h Hash, now time.Time) {
	copy(s, h[:])
	binary.LittleEndian.PutUint64(s[timeOff:], uint64(now.Unix()))
	binary.LittleEndian.PutUint32(s[checksumOff:], checksum(s))
}

func isZero(s []byte) bool {
	for _, c := range s {
		if c != 0 {
			return false
		}
	}
	return true
}

// Count returns how many valid records the file holds (for status).
func (r *Record) Count() int {
	if r == nil {
		return 0
	}
	n := 0
	buf := make([]byte, 64*bucketSize)
	for off := int64(headerSize); off < fileSize; off += int64(len(buf)) {
		if _, err := r.f.ReadAt(buf, off); err != nil {
			return n
		}
		for i := 0; i+slotSize <= len(buf); i += slotSize {
			if s := buf[i : i+slotSize]; !isZero(s) && slotOK(s) {
				n++
			}
		}
	}
	return n
}

// Forget removes the record of one destination key, or of all when key
// is "". The worker is the record's only writer; forgetting while it runs
// only means its next push recreates the file.
func Forget(queueDir, key string) (int, error) {
	dir := filepath.Join(queueDir, Dir)
	var names []string
	if key != "" {
		names = []string{key}
	} else {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	n := 0
	for _, name := range names {
		err := os.Remove(filepath.Join(dir, name))
		if err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("forgetting pushed paths: %w", err)
		}
	}
	return n, nil
}

// Replaced reports whether the record's file was removed or replaced
// since it was opened (by `forget --pushed`): the worker then opens the
// new one, or its writes would go to a file nobody reads.
func (r *Record) Replaced() bool {
	if r == nil {
		return true
	}
	open, err := r.f.Stat()
	if err != nil {
		return true
	}
	now, err := os.Lstat(r.f.Name())
	return err != nil || !os.SameFile(open, now)
}
