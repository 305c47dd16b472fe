package nixstore

import (
	"os/exec"
	"syscall"
)

// inGroup runs cmd in a process group of its own that is SIGKILLed whole
// when cmd's context ends, as package pusher runs a pusher: a child of
// Nix's (or of a wrapper script) that holds cmd's pipes goes with it, so
// that reading them ends. What escapes the group is left to WaitDelay.
func inGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		// The group's id is the leader's pid, which stays taken until
		// Wait reaps it; Cancel is never called after that.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
}
