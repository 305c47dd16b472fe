package matrix

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// A non-root user's package list (issue 19), built through the daemon:
// the hook, as root, queues what it names for a target with only a deny
// rule and package_lists = true, and exactly that goes up (with its
// closure; deny still wins). A list the user makes by hand naming root's
// path as text only (the list does not depend on it) gets nothing of
// root's pushed: the worker asks Nix for the list's closure and drops it.
func TestMatrixPackageList(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\ndeny = [\"secret-*\"]\npackage_lists = true\n"))
	lib, err := os.ReadFile(filepath.Join("..", "..", "nix", "lib.nix"))
	if err != nil {
		t.Fatal(err)
	}
	c.write(userHome+"/cfh-lib.nix", string(lib), 0o644)
	s := nixtest.Salt()
	file := c.exprFile(`let
  cfh = import ` + userHome + `/cfh-lib.nix { };
in rec {
  dep = ` + nixtest.Drv(s, "dep-1.0", nil) + `;
  app = ` + nixtest.Drv(s, "app-1.0", []string{"out", "doc"}, "dep") + `;
  secret = ` + nixtest.Drv(s, "secret-1.0", nil) + `;
  list = cfh.cachixPackages { packages = [ app secret ]; name = "user"; };
}`)
	r := c.Must(true, nil, "nix", "build", "-L", "--no-link", "--option", "substituters", "", "-f", file, "list")
	if !strings.Contains(r.Stderr, `cachix-filter-hook: queued 1 of 2 listed in cachix-packages-user: app-1.0 -> file://`+filesStore+` (skipped secret-1.0: deny "secret-*")`) {
		t.Errorf("nix build -L's log lacks the hook's line about the list:\n%s", r.Stderr)
	}
	app := strings.Trim(strings.TrimSpace(c.Must(true, nil, "nix-instantiate", "--eval", "-E", "(import "+file+").app.outPath").Stdout), `"`)
	closure := strings.Fields(c.Must(false, nil, "nix-store", "--query", "--requisites", app).Stdout)
	c.WaitLanded(60*time.Second, filesStore, closure)
	got := c.CachePaths(filesStore)
	if len(got) != len(closure) || len(closure) != 2 {
		t.Errorf("the cache holds %v, want exactly app's closure %v", got, closure)
	}

	// root's own path, which the user can name but not make a list
	// depend on without its context.
	rootOut := strings.TrimSpace(c.Must(false, nil, "nix-build", c.exprFile(nixtest.Drv(s, "root-only-1.0", nil)), "--no-out-link", "--option", "post-build-hook", "").Stdout)
	handmade := fmt.Sprintf(`let
  file = derivation { name = "cachix-packages-evil.list"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "printf '%%s\n' 'cachix-filter-hook package list 1' '%s' > $out" ]; };
in derivation { name = "cachix-packages-evil"; system = "builtin"; builder = "builtin:buildenv"; derivations = [ ]; manifest = file; }`, rootOut)
	c.NixBuild(handmade)
	eventually.True(t, 60*time.Second, "the queue to empty", func() bool { return c.QueueEntries() == 0 }, func() string { return tail(c.WorkerLog(), 3000) })
	if c.CachePaths(filesStore)[rootOut] {
		t.Errorf("root's %s, named as text in a user's list, was pushed", rootOut)
	}
	dropped := c.dropped(rootOut)
	if !strings.Contains(dropped, "only as text: not in its closure") {
		t.Errorf("dropped/ says %q of %s; worker log:\n%s", dropped, rootOut, tail(c.WorkerLog(), 3000))
	}
}

// dropped is the reason dropped/ gives for path, "" when none.
func (c *Chroot) dropped(path string) string {
	c.t.Helper()
	files, _ := filepath.Glob(c.Host(filepath.Join(queueDir, "dropped", "*")))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var e struct{ Path, Reason string }
		if json.Unmarshal(data, &e) == nil && e.Path == path {
			return e.Reason
		}
	}
	return ""
}
