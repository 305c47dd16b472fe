package nixstore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func requireNix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix-build"); err != nil {
		if os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
			t.Fatal("nix-build not found and CFH_TEST_REQUIRE_NIX=1")
		}
		t.Skip("needs Nix")
	}
}

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
	requireNix(t)
	salt := fmt.Sprint(time.Now().UnixNano())
	expr := fmt.Sprintf(`let dep = derivation { name = "nixstore-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; };
in derivation { name = "nixstore-app"; outputs = [ "out" "doc" ]; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out; echo %[1]s > $doc" ]; }`, salt)
	file := filepath.Join(t.TempDir(), "d.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	drv, err := exec.Command("nix-instantiate", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nix-store", "--realise", strings.TrimSpace(string(drv)), "--option", "substituters", "").CombinedOutput(); err != nil {
		t.Fatalf("nix-store --realise: %v\n%s", err, out)
	}
	ctx := context.Background()
	n := Nix{}
	outs, err := n.Outputs(ctx, strings.TrimSpace(string(drv)))
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := DrvOutputs(strings.TrimSpace(string(drv)))
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
	if _, err := n.Outputs(ctx, "/nix/store/00000000000000000000000000000000-missing.drv"); err == nil {
		t.Error("Outputs of a missing derivation succeeded")
	} else if !strings.Contains(err.Error(), "nix-store --query --outputs") {
		t.Errorf("error does not say what ran: %v", err)
	}
}
