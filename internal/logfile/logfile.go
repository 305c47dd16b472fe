// Package logfile is an append-only file rotated to <file>.1 when it
// grows past a size, so that a worker that runs for months on a busy
// builder cannot fill the disk: the worker's log, and the history of what
// it pushed (package history).
package logfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// File is an io.Writer that rotates. Only the worker writes these files
// (it holds the queue lock), so rotation needs no coordination between
// processes.
type File struct {
	mu      sync.Mutex
	path    string
	maxSize int64
	f       *os.File
	size    int64
}

// Open opens (creating, mode 0600) the log file for appending.
func Open(path string, maxSize int64) (*File, error) {
	l := &File{path: path, maxSize: maxSize}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	// The worker may run as root: the directories on the way must pass
	// the trust rule (nobody else could swap the file, or plant a hard
	// link to one of root's files, in a directory they can write).
	if err := trust.CheckParents(l.path); err != nil {
		return fmt.Errorf("opening log %s: %w", l.path, err)
	}
	// Never through a symlink, never anything but a regular file: a log
	// someone else pointed at root's files would be appended to as root.
	// A FIFO with no reader fails (ENXIO) rather than block.
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("opening log %s: %w", l.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening log %s: %w", l.path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("opening log: refusing %s: not a regular file", l.path)
	}
	// Someone else's file: whatever is logged would go to them.
	if err := trust.CheckOpened(l.path, f, trust.File); err != nil {
		f.Close()
		return fmt.Errorf("opening log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Check tells whether Open would succeed on path for the running user,
// without creating anything: what validate and doctor report before a
// worker finds out (and, detached, could only say in the log it cannot
// open). The error says why and Fix how to mend it.
func Check(path string) error {
	if err := trust.CheckParents(path); err != nil {
		if trust.IsRefusal(err) {
			return err
		}
		dir := filepath.Dir(path)
		if errors.Is(err, fs.ErrNotExist) {
			return &CheckError{Err: fmt.Errorf("%s: its directory %s does not exist", path, dir), Fix: "mkdir -p " + dir + " (as the user the worker runs as: root under nix-daemon), or set log.file"}
		}
		return &CheckError{Err: fmt.Errorf("%s: %w", path, err), Fix: "set log.file to a file in an existing directory"}
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
			fix := "make " + dir + " writable by the user the worker runs as, or set log.file"
			if errors.Is(err, unix.EROFS) {
				fix = "set log.file to a file on a writable file system"
			}
			return &CheckError{Err: fmt.Errorf("%s cannot be created: %s: %w", path, dir, err), Fix: fix}
		}
		return nil
	case err != nil:
		return &CheckError{Err: fmt.Errorf("%s: %w", path, err), Fix: "set log.file to another path"}
	case !fi.Mode().IsRegular():
		return &CheckError{Err: fmt.Errorf("%s is not a regular file (it is %s)", path, kindOf(fi.Mode())), Fix: "remove it (rm " + path + ") so that the worker makes the file, or set log.file to another path"}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &CheckError{Err: fmt.Errorf("%s cannot be opened for appending: %w", path, err), Fix: "make it writable by the user the worker runs as (root under nix-daemon), or set log.file"}
	}
	defer f.Close()
	if err := trust.CheckOpened(path, f, trust.File); err != nil {
		return err
	}
	return nil
}

// CheckError is a problem Check found, with its fix.
type CheckError struct {
	Err error
	Fix string
}

func (e *CheckError) Error() string { return e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "of mode " + m.String()
}

// Write appends p, rotating first if p would take the file past its
// size. A p longer than the size is cut to it, so the two files never
// hold more than twice the size, whatever is logged.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	if int64(len(p)) > l.maxSize {
		p = cut(p, l.maxSize)
	}
	if l.f == nil {
		// A rotation could not open the new file (a full disk, no inode
		// left): open it now. Rotating again would rename a file that
		// is not there, and the log would stay closed for good.
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	if l.size+int64(len(p)) > l.maxSize && l.size > 0 {
		l.f.Close()
		l.f = nil
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return 0, fmt.Errorf("rotating log %s: %w", l.path, err)
		}
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	w, err := l.f.Write(p)
	l.size += int64(w)
	if err != nil {
		return w, err
	}
	return n, nil
}

var cutMark = []byte("…[cut at log.max_size]\n")

// cut shortens p (longer than max) to max bytes at most, marked as cut
// and ending in a newline; before a UTF-8 character or an escape
// (logrus quotes a field with %q: \x1b, \u202e, \\) rather than inside
// it, as half of either reads as other text.
func cut(p []byte, max int64) []byte {
	if max < 1 {
		return nil
	}
	mark := cutMark
	if max <= 2*int64(len(cutMark)) {
		mark = []byte{'\n'}
	}
	n := int(max) - len(mark)
	// Cut looks back from n only: a copy of what is kept, not of p.
	n = escape.Cut(string(p[:n+1]), n)
	return append(p[:n:n], mark...)
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil // closed by a rotation that could not open the new file
	}
	return l.f.Close()
}
