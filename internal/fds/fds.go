// Package fds keeps the descriptors a process inherited from reaching the
// processes it starts.
//
// Go opens its own files close-on-exec, but a descriptor inherited from
// the parent stays open across exec: the hook inherits whatever the
// build's caller had open (`(nix-build ... 7>&1) | cat` gives it fd 7, the
// write end of a pipe), and a detached worker keeping it would hold the
// caller until the worker exits.
package fds

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"syscall"
)

// maxWalk bounds the descriptors tried one by one when they can be
// neither marked at once nor listed: a call each, and the limit of open
// files may be a million or more (nix-daemon's unit sets 1048576).
const maxWalk = 1 << 16

// CloseOnExec marks every descriptor above 2 close-on-exec, so that no
// child started afterwards inherits it; the process itself keeps them.
func CloseOnExec() error { return closeOnExec(closeRange, fdDir) }

func closeOnExec(closeRange func() bool, fdDir string) error {
	if closeRange() {
		return nil
	}
	d, err := os.Open(fdDir)
	if err != nil {
		// No /proc (a chroot, a container) on a kernel without
		// close_range: every number up to the limit, bounded.
		return walk(fmt.Errorf("listing open descriptors: %w", err))
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return walk(fmt.Errorf("listing open descriptors in %s: %w", fdDir, err))
	}
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd > 2 {
			// The listing's own descriptor is closed by now: an
			// error on it (EBADF) is expected and harmless.
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}

// walk marks descriptors 3 up to the soft limit of open files, or
// maxWalk, whichever is lower; it returns why it walked when one above
// the bound may be left unmarked.
func walk(why error) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		lim.Cur = math.MaxUint64 // unknown: maybe past the bound
	}
	return walkBelow(lim.Cur, why)
}

// walkBelow is walk under a limit of open files: no descriptor is
// limit or above. At a limit of exactly maxWalk every one is marked.
func walkBelow(limit uint64, why error) error {
	n := min(limit, maxWalk)
	for fd := 3; uint64(fd) < n; fd++ {
		syscall.CloseOnExec(fd) // EBADF for a number not open: harmless
	}
	if limit > maxWalk {
		return fmt.Errorf("%w; marked descriptors 3 to %d one by one, any above are left", why, maxWalk-1)
	}
	return nil
}
