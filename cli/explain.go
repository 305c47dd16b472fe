package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/storepath"
)

// targetDecision is one target's verdict on one path.
type targetDecision struct {
	Target   string `json:"target"`
	Selected bool   `json:"selected"`
	Rule     string `json:"rule"`
	Pattern  string `json:"pattern,omitempty"`
}

type explanation struct {
	Input    string           `json:"input"`
	Path     string           `json:"path"`
	Push     []string         `json:"push"`
	Targets  []targetDecision `json:"targets"`
	store    storepath.Path
	selected bool
}

func explain(c *config.Config, input string, p storepath.Path) explanation {
	x := explanation{Input: input, Path: p.String(), Push: []string{}, store: p}
	for _, t := range c.Targets {
		d := t.Rules.Decide(p)
		td := targetDecision{Target: t.Name, Selected: d.Selected, Rule: d.Reason()}
		if d.Rule != nil {
			td.Pattern = d.Rule.Text
		}
		if d.Selected {
			x.Push = append(x.Push, t.Name)
			x.selected = true
		}
		x.Targets = append(x.Targets, td)
	}
	return x
}

// line renders the decision as explain prints it:
// `push PATH -> main, work (allow "hello-*")` or `skip PATH (deny "*-doc")`.
func (x explanation) line() string {
	rel := x.Targets
	if x.selected {
		rel = nil
		for _, t := range x.Targets {
			if t.Selected {
				rel = append(rel, t)
			}
		}
	}
	// One reason when every relevant target agrees, otherwise one per target.
	reasons := make([]string, 0, len(rel))
	same := true
	for _, t := range rel {
		reasons = append(reasons, t.Target+": "+t.Rule)
		same = same && t.Rule == rel[0].Rule
	}
	reason := strings.Join(reasons, "; ")
	if same && len(rel) > 0 {
		reason = rel[0].Rule
	}
	if x.selected {
		return fmt.Sprintf("push %s -> %s (%s)", x.Path, strings.Join(x.Push, ", "), reason)
	}
	return fmt.Sprintf("skip %s (%s)", x.Path, reason)
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
	var all []explanation
	storeDir := storepath.StoreDir()
	for _, arg := range fs.Args() {
		p, err := storepath.Resolve(storeDir, arg)
		if err != nil {
			e.errorf("explain: %v", err)
			status = 1
			continue
		}
		x := explain(c, arg, p)
		if *asJSON {
			all = append(all, x)
		} else {
			fmt.Fprintln(e.stdout, x.line())
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if all == nil {
			all = []explanation{}
		}
		_ = enc.Encode(all)
	}
	return status
}
