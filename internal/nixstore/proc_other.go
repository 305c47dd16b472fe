//go:build !linux

package nixstore

import "syscall"

// procAttr puts a Nix process in a process group of its own (see the
// Linux version; other systems have no death signal).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
