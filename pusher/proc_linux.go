package pusher

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills the pusher when the worker dies, so a SIGKILLed
// worker leaves no upload running that a new worker would duplicate.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
