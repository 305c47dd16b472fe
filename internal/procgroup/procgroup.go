// Package procgroup runs a child in a process group of its own, so that
// it can be killed with everything it started: a pusher's helpers, or a
// child of Nix's that would otherwise keep the pipes its parent is read
// through open after the parent was killed.
package procgroup

import (
	"os/exec"
	"sync"
	"syscall"
)

// Group is a command that runs in a process group of its own. Its id is
// the leader's pid, which stays taken only until the leader is reaped:
// the group is signalled only before that, never after, when the number
// may be another's (Kill and the reaping in End take turns).
type Group struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	reaped bool // or about to be: the group's id is no longer ours
}

// Set makes cmd start in a process group of its own, and on Linux be
// killed when the thread that started it dies, so that a SIGKILLed
// worker leaves no upload running that a new worker would duplicate.
// cmd must then be waited for with the Group's End, not cmd.Wait,
// which would reap it behind Kill's back (a Cancel of CommandContext's
// that calls Kill included).
func Set(cmd *exec.Cmd) *Group {
	cmd.SysProcAttr = attr()
	return &Group{cmd: cmd}
}

// Kill SIGKILLs the process group, unless its leader was reaped, and
// cmd itself (should it have left the group; by its pidfd, which no
// other process can take over), and returns the error of the latter.
func (g *Group) Kill() error {
	if g.cmd.Process == nil {
		return nil
	}
	g.mu.Lock()
	if !g.reaped {
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	}
	g.mu.Unlock()
	return g.cmd.Process.Kill()
}

// End waits until cmd has exited, kills what it left in its group (a
// helper that closed its output, which nothing else would stop: it would
// run on, as root, with no time limit), then reaps it. On Linux the kill
// comes before the reaping: until then the leader's pid, the group's id,
// cannot be taken by another process, so the kill reaches no other
// group. Elsewhere nothing is killed, and a Kill racing the reaping may
// reach a group that took the same number.
func (g *Group) End() error {
	if waitExited(g.cmd.Process.Pid) {
		g.mu.Lock()
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		g.reaped = true
		g.mu.Unlock()
	}
	err := g.cmd.Wait()
	g.mu.Lock()
	g.reaped = true
	g.mu.Unlock()
	return err
}
