package cli

import (
	"fmt"
	"os"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// validateOptions are validate's flags.
type validateOptions struct{ configOnly bool }

func runValidate(e *env, o *validateOptions) int {
	load := config.Load
	if o.configOnly {
		// For another machine: the file's owner here says nothing.
		load = config.LoadElsewhere
	}
	c, err := e.loadWith(load)
	if err != nil {
		e.errorf("invalid configuration:\n%v", err)
		return 1
	}
	// What the config names must be usable too: a token file the worker
	// refuses fails every push as surely as a typo.
	if !o.configOnly {
		bad := false
		// The daemon's socket where a clean environment puts it:
		// the worker has nix-daemon's, not ours.
		for _, u := range checkUsed(c, os.Environ(), nil, os.Getenv("PATH"), "your PATH", "validate") {
			if u.err != nil {
				e.errorf("invalid configuration: %s", usedError(c, u))
				bad = true
			}
		}
		if bad {
			return 1
		}
	}
	fmt.Fprint(e.stdout, c.Effective())
	return 0
}
