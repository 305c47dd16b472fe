package fds

import (
	"math"

	"golang.org/x/sys/unix"
)

// fdDir lists the descriptors where close_range is missing; a variable
// for the tests.
var fdDir = "/proc/self/fd"

// closeRange marks every descriptor above 2 close-on-exec in one call,
// with no /proc needed (a chroot or container may lack it); false on a
// kernel before 5.11, which lacks the call.
func closeRange() bool {
	return unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil
}
