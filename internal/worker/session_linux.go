package worker

import (
	"errors"

	"golang.org/x/sys/unix"
)

// openPidfd opens a descriptor that becomes readable when pid exits.
func openPidfd(pid int32) (int, bool) {
	fd, err := unix.PidfdOpen(int(pid), 0)
	return fd, err == nil
}

// exited waits up to ms milliseconds for the process of fd to exit.
func exited(fd, ms int) bool {
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
	return n > 0 || err != nil && !errors.Is(err, unix.EINTR)
}

func closeFd(fd int) { unix.Close(fd) }
