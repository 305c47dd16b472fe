package nixstore

import "syscall"

// procAttr puts a Nix process in a process group of its own, so that
// killing it kills what it started too, and kills it when the caller
// dies (as package pusher does for a pusher).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
