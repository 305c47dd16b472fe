package matrix

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// The worker tells that the Nix process behind a hook has no builds left
// by that process's temporary roots (nixstore.ReadTempRoots): under
// nix-daemon the hook's parent is the daemon's process for the client's
// connection, and its roots list the outputs of every derivation the
// build set out to make from the first build's hook on. A hook of this
// test's copies them at each build.
func TestMatrixHookParentsTempRoots(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = [\"*\"]\n"))
	const hook, copies = "/usr/local/bin/roots-hook", "/tmp/hook-roots"
	os.RemoveAll(c.Host(copies))
	c.write(copies+"/.keep", "", 0o644)
	c.write(hook, "#!/bin/sh\ncp /nix/var/nix/temproots/$PPID "+copies+"/$$\n", 0o755)
	c.write("/etc/nix/nix.conf", strings.Replace(nixConf, hookPath, hook, 1), 0o644)
	c.stopAll()
	c.startDaemon(nil)
	s := nixtest.Salt()
	outs, _ := c.NixBuild(nixtest.List(nixtest.Drv(s, "roots-a-1.0", nil), nixtest.Drv(s, "roots-b-1.0", nil), nixtest.Drv(s, "roots-c-1.0", nil)), "--max-jobs", "1")
	ents, err := os.ReadDir(c.Host(copies))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		seen++
		roots, _, err := nixstore.ReadTempRoots(c.Host(copies), int32(pid), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if !slices.Contains(roots, o) {
				t.Errorf("the roots of the hook's parent, copied by hook %d, lack %s: %q", pid, o, roots)
			}
		}
	}
	if seen != len(outs) {
		t.Errorf("%d copies of the roots in %s, want one per build (%d)", seen, filepath.Join(c.Dir, copies), len(outs))
	}
}
