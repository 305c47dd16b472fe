package trust

// The walk: a path resolved from / on descriptors, one component at a
// time, as the kernel would, but refusing a link another user can
// repoint. Check, Open, CheckParents and CheckWriteDir stand on it.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// walked is where a walk ended: the last component, opened with O_PATH
// (so not followed, and nothing but a lookup done), in its directory.
type walked struct {
	dir  int    // the checked directory holding it
	name string // its name there
	fd   int    // O_PATH descriptor of it
	st   unix.Stat_t
	real string // its real path
}

func (w *walked) close() {
	unix.Close(w.fd)
	unix.Close(w.dir)
}

func walkPath(path string) (*walked, error) {
	return walkAbs(path, false)
}

// walkWrite is walkPath for a directory root writes into (CheckWriteDir):
// see walk's writes.
func walkWrite(path string) (*walked, error) {
	return walkAbs(path, true)
}

func walkAbs(path string, writes bool) (*walked, error) {
	abs, err := absolute(path)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return walk(path, abs, writes)
}

// absolute makes path absolute without cleaning it: "link/.." is the
// directory above link's target, as the kernel resolves it, not the
// directory holding link.
func absolute(path string) (string, error) {
	if filepath.IsAbs(path) {
		return path, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + path, nil
}

// maxLinks is how many symlinks a walk follows, as the kernel's limit.
const maxLinks = 40

// walk resolves abs from / one component at a time, each looked up
// relative to the descriptor of the directory before it (openat with
// O_NOFOLLOW), never by name from the top again: a directory checked
// stays the one looked into, whatever is renamed meanwhile. Each
// directory passed is checked as a Dir on its descriptor. A symlink is
// followed by reading it on its own descriptor, and only when the
// directory holding it is one that only root or the running user can
// write, or when root or the running user owns it: in a directory others
// can write (a sticky one, such as /tmp), another user's symlink is
// theirs to repoint, and the kernel follows it whatever
// fs.protected_symlinks says here. With writes (the way to a directory
// root writes into, or to a name it creates or appends: CheckParents),
// another user's symlink is refused wherever it sits: one in a directory
// only root can write now may be one they made while they could write
// there, so where it leads is their choice, and a chown or chmod of that
// directory keeps it.
func walk(path, abs string, writes bool) (*walked, error) {
	fail := func(err error) error { return fmt.Errorf("checking %s: %w", path, err) }
	type dir struct {
		fd   int
		real string
		st   unix.Stat_t
	}
	var stack []dir
	defer func() {
		for _, d := range stack {
			unix.Close(d.fd)
		}
	}()
	push := func(fd int, real string) error {
		d := dir{fd: fd, real: real}
		if err := unix.Fstat(fd, &d.st); err != nil {
			unix.Close(fd)
			return fail(&fs.PathError{Op: "stat", Path: real, Err: err})
		}
		stack = append(stack, d)
		if d.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fail(fmt.Errorf("%s is not a directory", real))
		}
		// A directory we look into: the rule applies to it.
		return checkOne(path, real, d.st.Uid, fileMode(d.st.Mode), Dir, true)
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fail(err)
	}
	if err := push(root, "/"); err != nil {
		return nil, err
	}
	todo := splitPath(abs)
	if len(todo) == 0 {
		return nil, fail(errors.New("/ is not a file"))
	}
	links := 0
	for {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1].fd)
				stack = stack[:len(stack)-1]
			}
			if len(todo) == 0 {
				return nil, fail(errors.New("the path ends in .."))
			}
			continue
		}
		parent := stack[len(stack)-1]
		next := filepath.Join(parent.real, c)
		fd, err := unix.Openat(parent.fd, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fail(&openError{PathError: &fs.PathError{Op: "open", Path: next, Err: err}, rest: todo})
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fail(&fs.PathError{Op: "stat", Path: next, Err: err})
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target, err := readLink(fd)
			unix.Close(fd)
			if err != nil {
				return nil, fail(&fs.PathError{Op: "readlink", Path: next, Err: err})
			}
			if writes && !trusted(st.Uid) {
				// Not "where root writes": CheckParents also
				// serves a file:// upstream's narinfo, only read.
				return nil, &Error{Path: path, Bad: next, Link: true, Uid: st.Uid, Mode: fileMode(st.Mode),
					Problem: "is a symbolic link owned by " + OwnerName(st.Uid) + ", so its owner chose where it leads",
					Fix:     "remove it (rm " + next + ") and put the directory you mean there, or choose a path without it"}
			}
			if parent.st.Mode&0o022 != 0 && !trusted(st.Uid) {
				return nil, &Error{Path: path, Bad: next, Link: true, Uid: st.Uid, Mode: fileMode(st.Mode),
					Problem: "is a symbolic link owned by " + OwnerName(st.Uid) + " in " + parent.real + ", which others can write, so its owner can repoint it at any time",
					Fix:     "point the setting at the file itself (" + target + "), or at a link of your own"}
			}
			if links++; links > maxLinks {
				return nil, fail(errors.New("too many symbolic links"))
			}
			if filepath.IsAbs(target) {
				for _, d := range stack[1:] {
					unix.Close(d.fd)
				}
				stack = stack[:1]
			}
			todo = append(splitPath(target), todo...)
			if len(todo) == 0 {
				return nil, fail(fmt.Errorf("%s points at /", next))
			}
			continue
		}
		if len(todo) == 0 {
			// The directory's descriptor goes to the caller.
			stack = stack[:len(stack)-1]
			return &walked{dir: parent.fd, name: c, fd: fd, st: st, real: next}, nil
		}
		if err := push(fd, next); err != nil {
			return nil, err
		}
	}
}

// openError is walk's failure to open a component: Path is its real
// path, and rest what the walk had left to resolve after it (a link's
// target included), for CheckWriteDir.
type openError struct {
	*fs.PathError
	rest []string
}

func (e *openError) Unwrap() error { return e.PathError }

// readLink reads the target of the symlink open (O_PATH) as fd.
func readLink(fd int) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= 1<<16 {
			return "", errors.New("symbolic link target too long")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
