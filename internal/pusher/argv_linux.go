package pusher

import "golang.org/x/sys/unix"

// argMax is the kernel's bound on argv and environment together: a
// quarter of the stack limit, at least 128 KiB.
func argMax() int {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &r); err != nil || r.Cur == unix.RLIM_INFINITY || r.Cur/4 > 1<<30 {
		return 2 << 20
	}
	return max(int(r.Cur/4), 128<<10)
}
