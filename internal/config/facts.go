package config

import (
	"fmt"
	"strings"
)

// Facts are what Nix and the upstream caches say about one path, for the
// rules that look beyond its name. The zero value knows nothing, and
// nothing unknown keeps a path from being pushed.
type Facts struct {
	// NarSize is the path's NAR size in bytes; 0 when unknown.
	NarSize int64 `json:"nar_size,omitempty"`
	// Substitutes says what the path's derivation says about
	// substitution (see the Subst constants); "" when not asked.
	Substitutes string `json:"substitutes,omitempty"`
	// Deriver is the .drv that built the path, when Nix knows it.
	Deriver string `json:"deriver,omitempty"`
	// Upstream holds the answer of each upstream cache asked: true when
	// it has the path.
	Upstream map[string]bool `json:"upstream,omitempty"`
	// Unreachable holds why an upstream could not answer.
	Unreachable map[string]string `json:"unreachable,omitempty"`
}

// What a derivation says about substituting its outputs.
const (
	SubstAllowed = "allowed" // allowSubstitutes is unset or true
	SubstDenied  = "denied"  // allowSubstitutes = false
	SubstNoDrv   = "no-drv"  // no deriver known, or its .drv is gone
	SubstBadDrv  = "bad-drv" // the .drv could not be read
	substUnknown = ""        // not asked
)

// Needs says which facts the configuration's rules use, so that nobody
// asks Nix or the network for what no rule reads.
type Needs struct {
	Size, Subst, Upstream bool
}

// Needs reports the facts the targets' rules use.
func (c *Config) Needs() Needs {
	var n Needs
	for _, t := range c.Targets {
		n.Size = n.Size || t.MaxNarSize > 0
		n.Subst = n.Subst || t.Unsubstitutable == UnsubstSkip
		n.Upstream = n.Upstream || len(t.Upstream) > 0
	}
	return n
}

// Any reports whether any fact is needed.
func (n Needs) Any() bool { return n.Size || n.Subst || n.Upstream }

// SizeRule is the reason a path larger than t's max_nar_size is left out,
// or "" when it is not larger (or its size is unknown).
func (t *Target) SizeRule(narSize int64) string {
	if t.MaxNarSize <= 0 || narSize <= t.MaxNarSize {
		return ""
	}
	return fmt.Sprintf("larger than max_nar_size (NAR %s, limit %s)", FormatSize(narSize), FormatSize(t.MaxNarSize))
}

// factRule applies t's size, unsubstitutable and upstream rules to a path
// the name rules selected: it returns the key and the reason of the rule
// that leaves it out, or "", and notes on facts that could not be known.
func (t *Target) factRule(f *Facts) (check, rule string, notes []string) {
	if f == nil {
		return "", "", nil
	}
	if r := t.SizeRule(f.NarSize); r != "" {
		return "max_nar_size", r, nil
	}
	if t.Unsubstitutable == UnsubstSkip {
		switch f.Substitutes {
		case SubstDenied:
			return "unsubstitutable", `allowSubstitutes = false (unsubstitutable = "skip")`, nil
		case SubstNoDrv:
			if f.Deriver != "" {
				notes = append(notes, fmt.Sprintf("its derivation %s is gone: counted as substitutable", f.Deriver))
			} else {
				notes = append(notes, "no derivation known: counted as substitutable")
			}
		case SubstBadDrv:
			notes = append(notes, fmt.Sprintf("its derivation %s could not be read: counted as substitutable", f.Deriver))
		}
	}
	for _, u := range t.Upstream {
		if f.Upstream[u] {
			return "upstream", "already in " + u, notes
		}
		if why, ok := f.Unreachable[u]; ok {
			notes = append(notes, fmt.Sprintf("upstream %s did not answer (%s): pushed", u, why))
		}
	}
	return "", "", notes
}

// notesText renders notes for a verdict line.
func notesText(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return "; " + strings.Join(notes, "; ")
}
