// Package logfile is an append-only file rotated to <file>.1 when it
// grows past a size, so that a worker that runs for months on a busy
// builder cannot fill the disk: the worker's log, and the history of what
// it pushed (package history).
package logfile

import (
	"fmt"
	"os"
	"sync"
	"syscall"
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
	// Never through a symlink, never anything but a regular file: a log
	// someone else pointed at root's files would be appended to as root.
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
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
	l.f, l.size = f, fi.Size()
	return nil
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
	if l.size+int64(len(p)) > l.maxSize && l.size > 0 {
		l.f.Close()
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

// cut shortens p to max bytes, marked as cut and ending in a newline.
func cut(p []byte, max int64) []byte {
	if max > 2*int64(len(cutMark)) {
		return append(p[:max-int64(len(cutMark)):max-int64(len(cutMark))], cutMark...)
	}
	if max < 1 {
		return nil
	}
	return append(p[:max-1:max-1], '\n')
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
