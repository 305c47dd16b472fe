package fds

import (
	"math"

	"golang.org/x/sys/unix"
)

const fdDirOfShell = "/proc/$$/fd"

// closeRangeWorks tells whether this kernel has close_range with
// CLOSE_RANGE_CLOEXEC (Linux 5.11; a seccomp filter may refuse it too),
// asked on a range that holds no descriptor.
func closeRangeWorks() bool {
	return unix.CloseRange(math.MaxUint32, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil
}
