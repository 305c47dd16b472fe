//go:build !linux

package pusher

import "syscall"

// procAttr puts the pusher in a process group of its own (see the Linux
// version; other systems have no death signal).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
