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
	"os"
	"strconv"
	"syscall"
)

// CloseOnExec marks every descriptor above 2 close-on-exec, so that no
// child started afterwards inherits it; the process itself keeps them.
func CloseOnExec() error {
	if closeRange() {
		return nil
	}
	d, err := os.Open(fdDir)
	if err != nil {
		return fmt.Errorf("listing open descriptors: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("listing open descriptors in %s: %w", fdDir, err)
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
