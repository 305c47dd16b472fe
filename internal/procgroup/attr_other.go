//go:build !linux

package procgroup

import "syscall"

// attr has no death signal: other systems have none.
func attr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
