package cli

import (
	"fmt"
	"os"
)

func runValidate(e *env) int {
	fs := e.flags("validate", "[--config-only]", "Load and check the config, and what it names that the worker will use (the\ntoken file, signing keys, cachix.bin found in your PATH, nix.bin_dir's nix\nand nix-store), by the rules the worker applies; print the effective\nconfiguration (file plus environment overrides) and exit 0, or print every\nproblem and exit 1.")
	configOnly := fs.Bool("config-only", false, "check the config alone, not the files and programs it names (for a config\nmade for another machine, such as a NixOS module's)")
	if st, ok := e.parse(fs); !ok {
		return st
	}
	// `validate FILE` would otherwise check whatever file the lookup
	// finds and report success: the file goes in --config.
	if fs.NArg() > 0 {
		e.errorf("validate takes no arguments; to check a file, run: cachix-filter-hook --config %s validate", fs.Arg(0))
		return 2
	}
	c, err := e.load()
	if err != nil {
		e.errorf("invalid configuration:\n%v", err)
		return 1
	}
	// What the config names must be usable too: a token file the worker
	// refuses fails every push as surely as a typo.
	if !*configOnly {
		bad := false
		for _, u := range checkUsed(c, os.Getenv("PATH"), "your PATH") {
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
