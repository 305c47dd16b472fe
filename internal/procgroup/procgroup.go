// Package procgroup runs a child in a process group of its own, so that
// it can be killed with everything it started: a pusher's helpers, or a
// child of Nix's that would otherwise keep the pipes its parent is read
// through open after the parent was killed.
package procgroup

import (
	"os/exec"
	"syscall"
)

// Set makes cmd start in a process group of its own, and on Linux be
// killed when the thread that started it dies, so that a SIGKILLed
// worker leaves no upload running that a new worker would duplicate.
func Set(cmd *exec.Cmd) { cmd.SysProcAttr = attr() }

// Kill SIGKILLs cmd's process group and cmd itself (should it have left
// the group), and returns the error of the latter. The group's id is the
// leader's pid, which stays taken until Wait reaps it.
func Kill(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return cmd.Process.Kill()
}

// End waits until cmd has exited, kills what it left in its group (a
// helper that closed its output, which nothing else would stop: it would
// run on, as root, with no time limit), then reaps it. On Linux the kill
// comes before the reaping: until then the leader's pid, the group's id,
// cannot be taken by another process, so the kill reaches no other
// group.
func End(cmd *exec.Cmd) error {
	if waitExited(cmd.Process.Pid) {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return cmd.Wait()
}
