package nixstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

func TestBin(t *testing.T) {
	if got := (Nix{BinDir: "/opt/nix/bin"}).Bin("nix-store"); got != "/opt/nix/bin/nix-store" {
		t.Errorf("with BinDir: %s", got)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "nix-store")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got := (Nix{}).Bin("nix-store"); got != fake {
		t.Errorf("from PATH: %s, want %s", got, fake)
	}
	t.Setenv("PATH", "")
	if got := (Nix{}).Bin("no-such-program-here"); got != "no-such-program-here" {
		t.Errorf("not found: %s, want the bare name", got)
	}
}

// TestQueries builds a derivation with two outputs, one referring to a
// dependency, and asks Nix for its outputs and closure.
func TestQueries(t *testing.T) {
	salt := nixtest.Salt()
	drvs, _ := nixtest.Build(t, fmt.Sprintf(`let dep = derivation { name = "nixstore-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; };
in derivation { name = "nixstore-app"; outputs = [ "out" "doc" ]; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out; echo %[1]s > $doc" ]; }`, salt))
	drv := drvs[0]
	ctx := context.Background()
	n := Nix{}
	outs, err := n.Outputs(ctx, drv)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := DrvOutputs(drv)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Sorted(slices.Values(fromFile)), slices.Sorted(slices.Values(outs))) {
		t.Errorf("DrvOutputs = %q, nix-store says %q", fromFile, outs)
	}
	var out, doc string
	for _, o := range outs {
		switch {
		case strings.HasSuffix(o, "-nixstore-app"):
			out = o
		case strings.HasSuffix(o, "-nixstore-app-doc"):
			doc = o
		}
	}
	if len(outs) != 2 || out == "" || doc == "" {
		t.Fatalf("Outputs = %q, want out and doc", outs)
	}
	closure, err := n.Closure(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(closure) != 2 || !slices.Contains(closure, out) {
		t.Fatalf("Closure = %q, want the app and its dependency", closure)
	}
	found := false
	for _, c := range closure {
		found = found || strings.HasSuffix(c, "-nixstore-dep")
	}
	if !found {
		t.Errorf("Closure = %q lacks the dependency", closure)
	}
	if closure[0] != out {
		t.Errorf("Closure = %q, want the root first", closure)
	}
	// As `nix-store --query --requisites` does, a path not in the store
	// fails the call rather than being left out.
	if _, err := n.Closure(ctx, out, "/nix/store/00000000000000000000000000000000-missing"); err == nil || !strings.Contains(err.Error(), "-missing is not in the store") {
		t.Errorf("Closure with a path not in the store: %v", err)
	}
	if _, err := n.Outputs(ctx, "/nix/store/00000000000000000000000000000000-missing.drv"); err == nil {
		t.Error("Outputs of a missing derivation succeeded")
	} else if !strings.Contains(err.Error(), "nix-store --query --outputs") {
		t.Errorf("error does not say what ran: %v", err)
	}
}

// TestQueryHangWithChildHoldingStdout guards the end of a nix-store
// --query (Outputs) once its context ends: nix-store prints its answer,
// then hangs with a child holding stdout. Killing nix-store alone left
// the read of stdout waiting for the child, for good.
func TestQueryHangWithChildHoldingStdout(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	killPidFile(t, pids)
	script := "#!/bin/sh\necho /nix/store/00000000000000000000000000000000-out\nsleep 3600 &\necho $! >> " + pids + "\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	endsWithContext(t, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := Nix{BinDir: dir}.Outputs(ctx, "/nix/store/00000000000000000000000000000000-hang.drv")
		return err
	})
}

// A nix-store --query whose output passes its bound (a nix-store that
// prints without end) fails, saying so, rather than being read into
// memory until its context ends.
func TestQueryOutputIsBounded(t *testing.T) {
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nyes /nix/store/00000000000000000000000000000000-out | head -c %d\n", maxQueryOutput+1<<20)
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	outs, err := Nix{BinDir: dir}.Outputs(context.Background(), "/nix/store/00000000000000000000000000000000-big.drv")
	if err == nil || !strings.Contains(err.Error(), "output past") {
		t.Errorf("Outputs of a nix-store printing %d bytes: %d paths, error %v; want an error", maxQueryOutput+1<<20, len(outs), err)
	}
}

// endsWithContext runs call with a context that ends after d: call must
// return an error, though what it started left a child holding its
// stdout (for an hour: longer than the test may wait), and before the
// path-info timeout, its only other end, could have ended it.
func endsWithContext(t *testing.T, d time.Duration, call func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- call(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("no error from a Nix call ended by its context")
		}
		if took := time.Since(start); took >= pathInfoTimeout {
			t.Errorf("the Nix call took %v: ended by the path-info timeout, not by its context", took)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("the Nix call did not return after its context ended: its stdout is read until EOF, which a child holds off")
	}
}

// TestNixGetsNoCachixSecrets: the worker may inherit cachix's token and
// signing key (cachix reads them from its environment), and every Nix
// program it ran inherited them too, though Nix has no use for them.
func TestNixGetsNoCachixSecrets(t *testing.T) {
	t.Setenv("CACHIX_AUTH_TOKEN", "inherited-T0KEN")
	t.Setenv("CACHIX_SIGNING_KEY", "cache-1:c2VjcmV0")
	dir := t.TempDir()
	script := "#!/bin/sh\nprintf '%s\\n' \"/nix/store/00000000000000000000000000000000-${CACHIX_AUTH_TOKEN:-none}-${CACHIX_SIGNING_KEY:-none}\"\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	outs, err := Nix{BinDir: dir}.Outputs(context.Background(), "/nix/store/00000000000000000000000000000000-x.drv")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/nix/store/00000000000000000000000000000000-none-none"; len(outs) != 1 || outs[0] != want {
		t.Errorf("nix-store saw %q, want %q: cachix's secrets reached it", outs, want)
	}
}
