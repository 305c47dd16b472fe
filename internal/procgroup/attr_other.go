//go:build !linux

package procgroup

import "syscall"

// attr has no death signal: other systems have none.
func attr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// waitExited cannot wait without reaping here: End then leaves the
// group alone.
func waitExited(pid int) bool { return false }
