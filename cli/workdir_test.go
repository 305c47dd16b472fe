package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The hook starts its worker in /, and validate and doctor resolve a
// relative cachix -c, HOME or socket from there; a worker run by hand
// kept its own directory, so cachix and nix copy read other files than
// the ones checked. It now works in /, having found the configuration
// it was named by a relative path from where it was named.
func TestWorkerRunsInRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "allow = [\"*\"]\nstore = \"file://" + filepath.Join(dir, "cache") + "\"\n[queue]\ndir = \"" + filepath.Join(dir, "q") + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, "hook.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
	if rc := e.main([]string{"--config", "hook.conf", "worker", "--once"}); rc != 0 {
		t.Fatalf("worker --once with a relative --config = %d: %s", rc, errs.String())
	}
	if wd, err := os.Getwd(); err != nil || wd != "/" {
		t.Errorf("worker --once, run in %s, works in %q (%v), want /, where the hook starts it", dir, wd, err)
	}
}
