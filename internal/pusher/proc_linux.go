package pusher

import "syscall"

// procAttr puts the pusher in a process group of its own, so that a
// timeout or a stopping worker can kill it with everything it started,
// and kills it when the worker dies, so that a SIGKILLed worker leaves no
// upload running that a new worker would duplicate.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
