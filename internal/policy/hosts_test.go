package policy

import (
	"strings"
	"testing"
)

// One config on two hosts: the target with hosts is on only where they
// match, and every rendering says why it is off.
func TestHosts(t *testing.T) {
	const conf = `
cache = "mycache"
allow = ["*"]
hosts = ["Builder-*"]
[[target]]
cache = "everywhere"
allow = ["*"]
[[target]]
cache = "nowhere"
allow = ["*"]
hosts = []
[queue]
dir = "/tmp/q"
`
	p := path("hello-2.12.1")
	for _, tc := range []struct {
		host string
		push []string
		line string
	}{
		{"builder-1", []string{"mycache", "everywhere"}, "push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> mycache, everywhere (allow \"*\"; not -> nowhere: target nowhere is for no host (hosts = []); this is builder-1)"},
		{"laptop", []string{"everywhere"}, "push /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 -> everywhere (allow \"*\"; not -> mycache: target mycache is for hosts Builder-*; this is laptop; not -> nowhere: target nowhere is for no host (hosts = []); this is laptop)"},
	} {
		c := load(t, conf)
		for _, tg := range c.Targets {
			tg.Host = tc.host
		}
		v := Decide(c, p, nil)
		if strings.Join(v.Push, " ") != strings.Join(tc.push, " ") || v.Line() != tc.line {
			t.Errorf("%s: push %v, line %q", tc.host, v.Push, v.Line())
		}
		if tc.host == "laptop" {
			td := v.Targets[0]
			if td.Check != CheckHosts || td.Rule != "target mycache is for hosts Builder-*; this is laptop" || td.DropReason() != td.Rule || td.DropKind() != "hosts" {
				t.Errorf("laptop: mycache's decision %+v", td)
			}
			if SelectedByName(c, p) != true {
				t.Error("SelectedByName: everywhere selects it")
			}
		}
		if td := v.Targets[2]; td.Selected || !strings.Contains(td.Rule, "target nowhere is for no host (hosts = [])") {
			t.Errorf("%s: an empty hosts list: %+v", tc.host, td)
		}
		// A path no target on this host selects says it for each.
		c.Targets = c.Targets[:1]
		if v := Decide(c, p, nil); tc.host == "laptop" && v.Line() != "skip /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1 (target mycache is for hosts Builder-*; this is laptop)" {
			t.Errorf("laptop, mycache alone: %q", v.Line())
		}
	}
	// The host name the config reads is the kernel's.
	c := load(t, conf)
	if c.Host == "" || c.Targets[0].Host != c.Host || c.Host != strings.ToLower(c.Host) {
		t.Errorf("Host = %q, target's %q", c.Host, c.Targets[0].Host)
	}
}

// A package list does not turn on a target that is off on this host.
func TestHostsOverListed(t *testing.T) {
	c := load(t, `
cache = "mycache"
allow = []
package_lists = true
hosts = ["builder-*"]
[queue]
dir = "/tmp/q"
`)
	c.Targets[0].Host = "laptop"
	p := path("myapp-1.0")
	f := &Facts{Listed: []Listing{{List: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-cachix-packages-x", Closure: ListInClosure}}}
	if td := DecideTarget(c.Targets[0], p, f, nil); td.Selected || td.Check != CheckHosts {
		t.Errorf("a listed path on a host the target is not for: %+v", td)
	}
	if Selects(c.Targets[0], p, f.Listed) {
		t.Error("Selects: a listed path on a host the target is not for")
	}
	c.Targets[0].Host = "builder-1"
	if td := DecideTarget(c.Targets[0], p, f, nil); !td.Selected {
		t.Errorf("a listed path on a builder: %+v", td)
	}
}
