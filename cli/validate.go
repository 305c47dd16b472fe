package cli

import "fmt"

func runValidate(e *env) int {
	fs := e.flags("validate", "", "Load and check the config; print the effective configuration (file plus\nenvironment overrides) and exit 0, or print every problem and exit 1.")
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
	if errs := c.CheckKeyFiles(); len(errs) > 0 {
		for _, err := range errs {
			e.errorf("invalid configuration: %v", err)
		}
		return 1
	}
	fmt.Fprint(e.stdout, c.Effective())
	return 0
}
