package cli

import (
	"encoding/json"
	"fmt"

	"github.com/cachix-filter-hook/cachix-filter-hook/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/storepath"
)

// explanation is explain's JSON record of one argument.
type explanation struct {
	Input string `json:"input"`
	Path  string `json:"path"`
	config.Verdict
}

func runExplain(e *env) int {
	fs := e.flags("explain", "[--json] PATH...", "Say, for each path, which targets select it and which rule decides.\nPATH may be a store path (built or not), a file inside one, or a symlink\ninto the store such as ./result or /run/current-system.")
	asJSON := fs.Bool("json", false, "print every target's decision as JSON")
	if st, ok := e.parse(fs); !ok {
		return st
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	status := 0
	all := []explanation{}
	storeDir := storepath.StoreDir()
	var args []string
	var paths []storepath.Path
	for _, arg := range fs.Args() {
		p, err := storepath.Resolve(storeDir, arg)
		if err != nil {
			e.errorf("explain: %v", err)
			status = 1
			continue
		}
		args, paths = append(args, arg), append(paths, p)
	}
	facts := e.gatherFacts(c, paths)
	for i, p := range paths {
		arg := args[i]
		v := c.DecideFacts(p, facts[p.String()])
		if *asJSON {
			all = append(all, explanation{Input: arg, Path: p.String(), Verdict: v})
		} else {
			fmt.Fprintln(e.stdout, v.Line())
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(all)
	}
	return status
}
