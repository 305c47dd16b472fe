package nixstore

import (
	"os/exec"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/procgroup"
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
// cmd is then waited for with the Group's End, never cmd.Wait: a
// helper left in the group once cmd exited (its output closed, so that
// no read waits for it) would run on, as root, with no time limit.
func inGroup(cmd *exec.Cmd) *procgroup.Group {
	g := procgroup.Set(cmd)
	cmd.Cancel = g.Kill
	return g
}
