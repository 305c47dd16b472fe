package policy

import (
	"fmt"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
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
	// Listed are the package lists that name the path (see listed.go).
	Listed []Listing `json:"listed,omitempty"`
	// PinnedIn are the targets in which push --pin pins the path (see
	// PinIn): there, and only there, the rules read it as ForPin says.
	PinnedIn []string `json:"-"`
}

// What a derivation says about substituting its outputs.
const (
	SubstAllowed = "allowed" // allowSubstitutes is unset or true
	SubstDenied  = "denied"  // allowSubstitutes = false
	SubstNoDrv   = "no-drv"  // no deriver known, or its .drv is gone
	SubstBadDrv  = "bad-drv" // the .drv could not be read
)

// Subst is the Substitutes fact of a derivation that was read.
func Subst(allowSubstitutes bool) string {
	if allowSubstitutes {
		return SubstAllowed
	}
	return SubstDenied
}

// factRule is a rule that reads a fact about a path its patterns
// selected. apply returns why it leaves the path out ("" when it does
// not) and notes on what could not be known.
type factRule struct {
	key   string                      // the key that sets it; TargetDecision.Check
	on    func(t *config.Target) bool // whether t's configuration uses it
	need  func(n *Needs)              // marks the fact it reads
	apply func(t *config.Target, f *Facts) (why string, notes []string)
}

// factRules apply in this order; the first that leaves a path out names
// the reason.
var factRules = []factRule{
	{
		key:   "max_nar_size",
		on:    func(t *config.Target) bool { return t.MaxNarSize > 0 },
		need:  func(n *Needs) { n.Size = true },
		apply: func(t *config.Target, f *Facts) (string, []string) { return SizeRule(t, f.NarSize), nil },
	},
	{
		key:   "unsubstitutable",
		on:    func(t *config.Target) bool { return t.Unsubstitutable == config.UnsubstSkip },
		need:  func(n *Needs) { n.Subst = true },
		apply: unsubstitutable,
	},
	{
		key:   "upstream",
		on:    func(t *config.Target) bool { return len(t.Upstream) > 0 },
		need:  func(n *Needs) { n.Upstream = true },
		apply: inUpstream,
	},
}

// SizeRule is the reason a path of narSize bytes is larger than t's
// max_nar_size, or "" when it is not (or its size is unknown).
func SizeRule(t *config.Target, narSize int64) string {
	if t.MaxNarSize <= 0 || narSize <= t.MaxNarSize {
		return ""
	}
	return fmt.Sprintf("larger than max_nar_size (NAR %s, limit %s)", config.FormatSize(narSize), config.FormatSize(t.MaxNarSize))
}

func unsubstitutable(t *config.Target, f *Facts) (string, []string) {
	if t.Unsubstitutable != config.UnsubstSkip {
		return "", nil
	}
	switch f.Substitutes {
	case SubstDenied:
		return `allowSubstitutes = false (unsubstitutable = "skip")`, nil
	case SubstNoDrv:
		if f.Deriver != "" {
			return "", []string{fmt.Sprintf("its derivation %s is gone: counted as substitutable", f.Deriver)}
		}
		return "", []string{"no derivation known: counted as substitutable"}
	case SubstBadDrv:
		return "", []string{fmt.Sprintf("its derivation %s could not be read: counted as substitutable", f.Deriver)}
	}
	return "", nil
}

func inUpstream(t *config.Target, f *Facts) (string, []string) {
	var notes []string
	for _, u := range t.Upstream {
		if f.Upstream[u] {
			return "already in " + u, notes
		}
		if why, ok := f.Unreachable[u]; ok {
			notes = append(notes, fmt.Sprintf("upstream %s did not answer (%s): pushed", u, why))
		}
	}
	return "", notes
}

// ForPin is what the rules read of a root given with push --pin: its
// facts without whether Nix would substitute it and whether an upstream
// has it. A pinned root is to be kept in that cache, so it goes there
// whatever unsubstitutable and upstream say (a NixOS system's toplevel
// sets allowSubstitutes = false, and a deployment fetches it from the
// cache); deny, max_nar_size and closure_deny still apply.
func ForPin(f *Facts) *Facts {
	if f == nil {
		return nil
	}
	g := *f
	g.Substitutes, g.Upstream, g.Unreachable = "", nil, nil
	return &g
}

// PinIn is f for a root that push --pin pins in targets (its Cachix
// targets): DecideTarget reads it as ForPin says for those targets alone,
// as the worker does, which applies ForPin only in a target a pin of the
// root waits in. A Nix store has no pins, so there unsubstitutable and
// upstream still leave the root out.
func PinIn(f *Facts, targets []string) *Facts {
	if f == nil {
		return nil
	}
	g := *f
	g.PinnedIn = targets
	return &g
}
