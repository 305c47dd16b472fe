package policy

import (
	"fmt"
	"strings"
	"testing"
)

// push --pin decides whether a root may be pinned with DecideTarget, its
// facts, lists and closure known; the worker, pinning a root pushed
// before, with ByNameUnlisted, which knows none of them. The worker must
// not drop what push queued, and must drop what no facts could select:
// ByNameUnlisted keeps a root exactly when some facts, lists and closure
// make DecideTarget select it. Checked over every kind of target (hosts,
// package_lists, allow, deny, the rules that read facts, closure_deny) and
// of facts.
func TestByNameUnlistedIsDecideTargetWithoutFacts(t *testing.T) {
	var conf strings.Builder
	for _, hosts := range []string{"", `hosts = ["builder-*"]`, `hosts = ["other-*"]`, `hosts = []`} {
		for _, lists := range []bool{false, true} {
			for _, allow := range []string{`allow = ["hello-*"]`, `allow = ["*"]`, ""} {
				fmt.Fprintf(&conf, "[[target]]\ncache = \"c%d\"\n%s\n%s\npackage_lists = %v\ndeny = [\"secret-*\"]\nmax_nar_size = \"1KiB\"\nunsubstitutable = \"skip\"\nupstream = [\"https://cache.nixos.org\"]\nclosure_deny = \"skip\"\n",
					conf.Len(), hosts, allow, lists)
			}
		}
	}
	conf.WriteString("[queue]\ndir = \"/tmp/q\"\n")
	c := load(t, conf.String())
	list := "/nix/store/" + strings.Repeat("l", 32) + "-cachix-packages"
	dep := path("secret-dep").String()
	var facts []*Facts
	for _, closure := range []string{"", ListInClosure, ListTextOnly, ListInvalid} {
		for _, targets := range [][]string{nil, {"nobody"}} {
			facts = append(facts, &Facts{Listed: []Listing{{List: list, Targets: targets, Closure: closure}}})
		}
	}
	facts = append(facts, nil, &Facts{}, &Facts{NarSize: 1 << 20}, &Facts{Substitutes: SubstDenied},
		&Facts{Upstream: map[string]bool{"https://cache.nixos.org": true}})
	closures := []*Closure{nil, {Paths: []string{dep}}}
	for _, tg := range c.Targets {
		tg.Host = "builder-1"
		for _, name := range []string{"hello-1", "secret-1", "other-1"} {
			root := path(name)
			d, open := ByNameUnlisted(tg, root)
			kept := d.Selected || open
			selectable := false
			for _, f := range facts {
				for _, cl := range closures {
					for _, pinned := range []bool{false, true} {
						g := f
						if pinned {
							g = PinIn(f, []string{tg.Name})
						}
						if cl != nil {
							cl.Paths = []string{root.String(), dep}
						}
						if DecideTarget(tg, root, g, cl).Selected {
							selectable = true
							if !kept {
								t.Errorf("%s (%v) of %s: push --pin pins it with facts %+v, closure %v; the worker drops it: %s", tg.Name, tg.Hosts, name, g, cl, d.DropReason())
							}
						}
					}
				}
			}
			if kept && !selectable {
				t.Errorf("%s (%v, package_lists %v) of %s: the worker keeps a pin no facts make push --pin queue (%+v)", tg.Name, tg.Hosts, tg.PackageLists, name, d)
			}
		}
	}
}
