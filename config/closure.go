package config

import (
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/storepath"
)

// The closure rule. A pusher uploads each path's whole runtime closure, so
// a path denied by name still leaves the machine inside the closure of a
// path that is pushed. closure_deny decides (cachix/cachix#387's
// question): "skip" (the default) leaves out a selected path whose closure
// holds a denied one, so deny wins; "push" pushes it, denied dependencies
// included, and every message says so.

// ClosureDenied returns the first path of root's closure (root excluded)
// that t's rules deny by name, and the pattern; "" when there is none.
func (t *Target) ClosureDenied(root string, closure []string) (dep, pattern string) {
	storeDir := storepath.StoreDir()
	for _, c := range closure {
		if c == root {
			continue
		}
		p, err := storepath.Parse(storeDir, c)
		if err != nil {
			continue
		}
		if d := t.Rules.Denies(p); d != nil {
			return c, d.Text
		}
	}
	return "", ""
}

// HasDeny reports whether t denies anything by name: only then can a
// closure hold a denied path.
func (t *Target) HasDeny() bool { return len(t.Deny) > 0 }

// NeedsClosure reports whether any target's closure rule can change a
// verdict or its message.
func (c *Config) NeedsClosure() bool {
	for _, t := range c.Targets {
		if t.HasDeny() {
			return true
		}
	}
	return false
}

// ClosureSkipReason is why closure_deny = "skip" leaves a path out.
func ClosureSkipReason(dep, pattern string) string {
	return fmt.Sprintf("closure_deny = \"skip\": its closure contains %s, denied by %q", dep, pattern)
}

// ClosurePushNote says what closure_deny = "push" uploads besides the path.
func ClosurePushNote(dep, pattern string) string {
	return fmt.Sprintf("also uploads %s, denied by %q, inside its closure (closure_deny = \"push\")", dep, pattern)
}

// ApplyClosure applies every target's closure rule to v, for a path whose
// runtime closure is known (nil: not in the store, nothing changes).
func (c *Config) ApplyClosure(v *Verdict, closure []string) {
	if closure == nil {
		return
	}
	root := v.Path.String()
	for i := range v.Targets {
		td := &v.Targets[i]
		t := c.Target(td.Target)
		if !td.Selected || t == nil {
			continue
		}
		dep, pat := t.ClosureDenied(root, closure)
		if dep == "" {
			continue
		}
		if t.ClosureDeny == ClosurePush {
			td.Notes = append(td.Notes, ClosurePushNote(dep, pat))
			continue
		}
		td.Selected, td.Check, td.Rule, td.Pattern = false, "closure_deny", ClosureSkipReason(dep, pat), pat
		v.Push = removeString(v.Push, td.Target)
	}
}

// UploadedInside records that target uploads v's path, which it does not
// select, inside the closure of root (closure_deny = "push").
func (v *Verdict) UploadedInside(target, root string) {
	for i := range v.Targets {
		if td := &v.Targets[i]; td.Target == target && !td.Selected && td.InsideClosureOf == "" {
			td.InsideClosureOf = root
		}
	}
}

// uploadedLine renders a path no target selects that some target uploads
// anyway inside another path's closure: never "skip".
func (v Verdict) uploadedLine() (string, bool) {
	var parts []string
	for _, td := range v.Targets {
		if td.InsideClosureOf != "" {
			parts = append(parts, fmt.Sprintf("-> %s inside the closure of %s", td.Target, td.InsideClosureOf))
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return fmt.Sprintf("denied %s (%s), but uploaded %s (closure_deny = \"push\")", v.Path, v.Reason(), strings.Join(parts, "; ")), true
}

func removeString(l []string, s string) []string {
	out := l[:0]
	for _, x := range l {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
