// Package safeopen opens files that something untrusted may have put in
// our way (a .drv, a config or token file) without ever blocking.
//
// os.Open of a FIFO blocks until a writer appears, and SIGTERM does not
// interrupt it; a device can be read forever. Here the open is
// non-blocking, the kind of file is checked on the open descriptor
// (fstat, so there is no race with a rename), and anything but a regular
// file is refused with a message. A size limit is an error that names the
// limit, never a silent cut.
package safeopen

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is wrapped by the error for a FIFO, device, socket or
// directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error for a file over Options.MaxSize.
var ErrTooLarge = errors.New("file too large")

// ErrSymlink is wrapped by the error of Open with NoFollow on a symbolic
// link.
var ErrSymlink = errors.New("it is a symbolic link")

// Options says how to open.
type Options struct {
	// MaxSize, if above 0, is the largest size accepted, in bytes.
	MaxSize int64
	// NoFollow refuses a symbolic link as the last component.
	NoFollow bool
}

// Open opens path for reading. The file returned is a regular file no
// larger than opt.MaxSize when it was opened.
func Open(path string, opt Options) (*os.File, fs.FileInfo, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	if opt.NoFollow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if opt.NoFollow && isLoop(err) {
			return nil, nil, fmt.Errorf("refusing %s: %w", path, ErrSymlink)
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("refusing %s: %w (it is %s)", path, ErrNotRegular, kind(fi.Mode()))
	}
	if opt.MaxSize > 0 && fi.Size() > opt.MaxSize {
		f.Close()
		return nil, nil, tooLarge(path, fi.Size(), opt.MaxSize)
	}
	return f, fi, nil
}

// ReadFile reads the whole of path, as Open allows it. A file that grows
// past the limit while it is read is refused too.
func ReadFile(path string, opt Options) ([]byte, error) {
	f, _, err := Open(path, opt)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, opt.MaxSize)
}

// ReadAll reads the whole of the open file f (named by f.Name() in
// errors), refusing one larger than maxSize (if above 0) as it is when
// read: whole or not at all.
func ReadAll(f *os.File, maxSize int64) ([]byte, error) {
	var r io.Reader = f
	if maxSize > 0 {
		if fi, err := f.Stat(); err == nil && fi.Size() > maxSize {
			return nil, tooLarge(f.Name(), fi.Size(), maxSize)
		}
		r = io.LimitReader(f, maxSize+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if maxSize > 0 && int64(len(b)) > maxSize {
		return nil, tooLarge(f.Name(), int64(len(b)), maxSize)
	}
	return b, nil
}

func tooLarge(path string, size, limit int64) error {
	return fmt.Errorf("refusing %s: %w: %d bytes or more, the limit is %d bytes", path, ErrTooLarge, size, limit)
}

func isLoop(err error) bool {
	// O_NOFOLLOW on a symlink fails with ELOOP (Linux, macOS) or, on
	// some BSDs, EMLINK.
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK)
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "of mode " + m.String()
}
