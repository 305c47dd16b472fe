package nixstore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// TempRootsDir is where Nix keeps each process's temporary GC roots:
// $NIX_STATE_DIR/temproots, /nix/var/nix/temproots by default.
func TempRootsDir() string {
	if d := os.Getenv("NIX_STATE_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(filepath.Clean(d), "temproots")
	}
	return "/nix/var/nix/temproots"
}

// MaxTempRoots bounds what ReadTempRoots reads of one process's file, in
// all: a build of a whole NixOS system holds some 10,000 roots of about
// 80 bytes.
const MaxTempRoots = 8 << 20

// ReadTempRoots reads the temporary GC roots that the Nix process pid
// added since offset off of its file in dir (TempRootsDir), and returns
// the store paths among them and the offset to read from next time.
//
// Nix appends each root to that file, NUL-terminated, and a process that
// builds adds the outputs of every derivation it sets out to build as it
// starts on it (DerivationGoal, in Nix 2.8 to 2.34 alike), long before
// they exist. So the outputs a nix-build or a daemon connection still
// has to make are the roots that are not valid yet: the worker reads
// that to push a burst's last path as soon as its build is registered,
// rather than when the Nix process exits.
//
// The file is only a hint about timing: what it says never decides what
// is pushed, so it needs no ownership check (under nix-daemon it is
// root's, in a root-only directory; a forged one could only make a push
// start sooner or later). It is read without following a symbolic link,
// only if it is a regular file, and never past MaxTempRoots in all; an
// entry whose NUL has not been written yet is left for the next read.
func ReadTempRoots(dir string, pid int32, off int64) (paths []string, next int64, err error) {
	if pid <= 0 {
		return nil, off, fmt.Errorf("no temporary roots for pid %d", pid)
	}
	name := filepath.Join(dir, strconv.Itoa(int(pid)))
	f, fi, err := safeopen.Open(name, safeopen.Options{NoFollow: true})
	if err != nil {
		return nil, off, err
	}
	defer f.Close()
	if fi.Size() > MaxTempRoots {
		return nil, off, fmt.Errorf("reading %s: %w: %d bytes, the limit is %d", name, safeopen.ErrTooLarge, fi.Size(), MaxTempRoots)
	}
	if fi.Size() < off {
		return nil, off, fmt.Errorf("reading %s: shorter (%d bytes) than when last read (%d): not the same process's", name, fi.Size(), off)
	}
	if fi.Size() == off {
		return nil, off, nil
	}
	b := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		return nil, off, fmt.Errorf("reading %s: %w", name, err)
	}
	b = b[:n]
	end := bytes.LastIndexByte(b, 0)
	if end < 0 {
		return nil, off, nil
	}
	store := storepath.StoreDir()
	for _, root := range bytes.Split(b[:end], []byte{0}) {
		if p, err := storepath.Parse(store, string(root)); err == nil {
			paths = append(paths, p.String())
		}
	}
	return paths, off + int64(end) + 1, nil
}
