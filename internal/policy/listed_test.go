package policy

import (
	"strings"
	"testing"
)

// A listed path: deny wins; without package_lists the rule says so; a
// list that names other targets is no listing for this one; a path named
// as text only is left out with that reason; otherwise the list selects
// it, and the rules that read facts still decide.
func TestListed(t *testing.T) {
	c := load(t, `
[[target]]
store = "file:///srv/on"
name = "on"
deny = ["secret-*"]
package_lists = true
max_nar_size = "1KiB"
[[target]]
store = "file:///srv/off"
name = "off"
allow = ["hello-*"]
[queue]
dir = "/tmp/q"
`)
	on, off := c.Targets[0], c.Targets[1]
	list := "/nix/store/" + strings.Repeat("l", 32) + "-cachix-packages"
	listed := func(closure string, targets ...string) *Facts {
		return &Facts{Listed: []Listing{{List: list, Targets: targets, Closure: closure}}}
	}
	app, secret, hello := path("myapp-1.0"), path("secret-key"), path("hello-2.12.1")
	for _, tc := range []struct {
		why     string
		td      TargetDecision
		sel     bool
		rule    string
		check   string
		listedB string
	}{
		{"listed", DecideTarget(on, app, listed(""), nil), true, "listed in " + list, "", list},
		{"listed, in its closure", DecideTarget(on, app, listed(ListInClosure), nil), true, "listed in " + list, "", list},
		{"named for this target", DecideTarget(on, app, listed("", "on"), nil), true, "listed in " + list, "", list},
		{"named for another target", DecideTarget(on, app, listed("", "off"), nil), false, "no allow rule matches; listed in " + list + " for off only", "", ""},
		{"deny wins", DecideTarget(on, secret, listed(ListInClosure), nil), false, `deny "secret-*"`, "", ""},
		{"text only", DecideTarget(on, app, listed(ListTextOnly), nil), false, TextOnlyRule(list), CheckListed, ""},
		{"package_lists off", DecideTarget(off, app, listed(""), nil), false, "no allow rule matches; listed in " + list + ", but package_lists is off for off", "", ""},
		{"a pattern selects it anyway", DecideTarget(off, hello, listed(ListTextOnly), nil), true, `allow "hello-*"`, "", ""},
		{"the size rule still applies", DecideTarget(on, app, &Facts{NarSize: 4096, Listed: listed("").Listed}, nil), false, "larger than max_nar_size (NAR 4.0 KiB, limit 1.0 KiB)", "max_nar_size", list},
	} {
		if tc.td.Selected != tc.sel || tc.td.Rule != tc.rule || tc.td.Check != tc.check || tc.td.Listed != tc.listedB {
			t.Errorf("%s: %+v", tc.why, tc.td)
		}
	}
	// The line explain and push --dry-run print.
	v := Decide(c, app, listed(ListInClosure))
	if want := "push " + app.String() + " -> on (listed in " + list + ")"; v.Line() != want {
		t.Errorf("line:\n got %s\nwant %s", v.Line(), want)
	}
	if got := DecideTarget(on, app, listed(ListTextOnly), nil).DropReason(); got != TextOnlyRule(list) {
		t.Errorf("drop reason %q", got)
	}
	// One listing in the closure counts, whatever the order.
	two := &Facts{Listed: []Listing{{List: "/x", Closure: ListTextOnly}, {List: list, Closure: ListInClosure}}}
	if td := DecideTarget(on, app, two, nil); !td.Selected || td.Listed != list {
		t.Errorf("two lists: %+v", td)
	}
	if !Selects(on, app, listed("").Listed) || Selects(off, app, listed("").Listed) || Selects(on, secret, listed("").Listed) {
		t.Errorf("Selects")
	}
	if !SelectedByNameOrList(c, app, listed("").Listed) || SelectedByNameOrList(c, app, nil) || !AcceptsLists(c) {
		t.Errorf("SelectedByNameOrList / AcceptsLists")
	}
	// WithListings adds listings to a copy, never to facts given.
	base := &Facts{NarSize: 7}
	f := WithListings(func(string) *Facts { return base }, map[string][]Listing{app.String(): listed("").Listed})
	if g := f(app.String()); g.NarSize != 7 || len(g.Listed) != 1 || len(base.Listed) != 0 {
		t.Errorf("WithListings: %+v %+v", g, base)
	}
	if g := f(hello.String()); g != base {
		t.Errorf("an unlisted path's facts changed")
	}
}
