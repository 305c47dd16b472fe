package test

// Adversarial tests of issue 9 (trust): as root, with a real unprivileged
// user created for the test, each attack on what root runs, reads or
// pushes must fail, with real Nix builds and the cachix stand-in.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// trWriteScript writes a shell script that records that it ran (in
// marker) and then runs the stand-in.
func trWriteScript(t *testing.T, path, marker string) {
	t.Helper()
	script := "#!/bin/sh\necho ran >> " + marker + "\nexec " + standinBin + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A cachix.bin another user owns is never run by the root worker (which
// would hand it the token); the entry fails saying why, and once root
// owns it, `retry` pushes.
func TestTrustUserOwnedCachixNotRun(t *testing.T) {
	u := testuser.New(t)
	e := NewEnv(t, `
cache = "c"
allow = ["*"]

[cachix]
bin = "@DIR@/bin/cachix"
auth_token_file = "@DIR@/token"
`)
	if err := os.WriteFile(filepath.Join(e.Dir, "token"), []byte("tok-"+Salt()), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.Dir, "bin")
	os.Mkdir(bin, 0o755)
	marker := filepath.Join(e.Dir, "ran")
	cachix := filepath.Join(bin, "cachix")
	trWriteScript(t, cachix, marker)
	u.Chown(t, cachix)

	s := Salt()
	paths, _ := e.Build(plList(Drv(s, "own-1.0", nil)))
	var lastErr string
	plWaitFor(t, 30*time.Second, "the entry to fail with a refusal", func() bool {
		_, st := plStatusJSON(t, e)
		for _, tg := range st.Targets {
			for _, f := range tg.Failures {
				lastErr = f.LastError
			}
		}
		return lastErr != ""
	})
	for _, want := range []string{"refusing " + cachix, "owned by " + u.Name, "chown root " + cachix} {
		if !strings.Contains(lastErr, want) {
			t.Errorf("last error %q lacks %q", lastErr, want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran a cachix.bin owned by another user")
	}
	if !strings.Contains(e.Log(), "refusing "+cachix) {
		t.Errorf("worker log does not say why:\n%s", e.Log())
	}

	// Fixed as the message says: pushed.
	if err := os.Chown(cachix, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := e.Run(t.Context(), "retry"); code != 0 {
		t.Fatalf("retry: %s", errOut)
	}
	e.Wait(30 * time.Second)
	plExpectCache(t, "c", filepath.Join(e.Standin, "c"), paths, func(string) bool { return true })
}

// The same for a cachix.bin in a directory another user can write: they
// could replace it between pushes.
func TestTrustCachixInWritableDirNotRun(t *testing.T) {
	e := NewEnv(t, `
cache = "c"
allow = ["*"]

[cachix]
bin = "@DIR@/shared/cachix"
`)
	shared := filepath.Join(e.Dir, "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	marker := filepath.Join(e.Dir, "ran")
	trWriteScript(t, filepath.Join(shared, "cachix"), marker)
	e.Build(plList(Drv(Salt(), "ww-1.0", nil)))
	var lastErr string
	plWaitFor(t, 30*time.Second, "the entry to fail with a refusal", func() bool {
		_, st := plStatusJSON(t, e)
		for _, tg := range st.Targets {
			for _, f := range tg.Failures {
				lastErr = f.LastError
			}
		}
		return lastErr != ""
	})
	if !strings.Contains(lastErr, "its directory "+shared+" is writable by group or others") {
		t.Errorf("last error: %q", lastErr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran a cachix.bin from a world-writable directory")
	}
	os.Chmod(shared, 0o755)
	e.Run(t.Context(), "retry")
	e.Wait(30 * time.Second)
}
