package nixstore

import (
	"os/exec"
	"syscall"
	"time"
)

// waitDelay bounds how long a Nix command's pipes are waited for once its
// context ended or it exited: the group kill (inGroup) misses what left
// the group (setsid), and that may hold stdout open, which a reader
// would otherwise wait on for good. exec closes the pipes after it.
const waitDelay = 5 * time.Second

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
