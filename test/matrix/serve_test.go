package matrix

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// The facts and closures come from `nix-store --serve` on every Nix the
// suite runs (internal/nixstore/serve.go): with nix.bin_dir holding
// nix-store alone, the `nix path-info --json` fallback cannot run, so
// push --closure --dry-run gives its verdicts only if the serve protocol
// answered (a closure with a dependency and a denied doc output).
func TestMatrixServeProtocol(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = [\"*\"]\ndeny = [\"*-doc\"]\n"))
	s := nixtest.Salt()
	file := c.exprFile(`rec {
  dep = ` + nixtest.Drv(s, "sv-dep-1.0", nil) + `;
  app = ` + nixtest.Drv(s, "sv-app-1.0", []string{"out", "doc"}, "dep") + `;
}`)
	app := strings.TrimSpace(c.Must(false, nil, "nix-build", file, "-A", "app.out", "--no-out-link", "--option", "post-build-hook", "").Stdout)
	real := strings.TrimSpace(c.Must(false, nil, "sh", "-c", "readlink -f \"$(command -v nix-store)\"").Stdout)
	bin := "/usr/local/lib/cfh-serve-only"
	if err := os.MkdirAll(c.Host(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(c.Host(bin)) })
	if err := os.Symlink(real, filepath.Join(c.Host(bin), "nix-store")); err != nil {
		t.Fatal(err)
	}
	r := c.CLI([]string{"CACHIX_FILTER_HOOK_NIX_BIN_DIR=" + bin}, "push", "--closure", "--dry-run", app)
	if r.Code != 0 || !strings.Contains(r.Stdout, "push "+app+" ->") || !strings.Contains(r.Stdout, "-sv-dep-1.0 ->") {
		t.Errorf("push --closure --dry-run with nix-store alone: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// The worker's long-lived session (nixstore.Session) turns Nix's cache of
// invalid paths off with a setting every Nix of the matrix knows (one it
// did not know would warn, and the session would say "not valid" for an
// hour of a path built after it was asked about).
func TestMatrixSessionSettings(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = [\"*\"]\n"))
	// The arguments nixstore's startServe gives; empty input ends the
	// session at once.
	r := c.Run(false, nil, "sh", "-c", `nix-store --serve --option substituters "" --option narinfo-cache-negative-ttl 0 </dev/null`)
	// It ran (its input ends at once: an error, but not "not found").
	if r.Code == 126 || r.Code == 127 || r.Stderr == "" {
		t.Fatalf("nix-store --serve did not run: exit %d: %s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, "unknown setting") {
		t.Errorf("nix-store --serve with the session's settings: %s", r.Stderr)
	}
}
