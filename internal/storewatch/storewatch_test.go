package storewatch

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// A fake store directory: the watcher reports the paths whose lock file
// was deleted, and nothing else (not .drv files, not malformed names, not
// locks still held).
func TestLockDeletions(t *testing.T) {
	dir := t.TempDir()
	w, err := Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{
		"l9r346p3d25vs4g5v37f3r3f28js97kb-hello-2.12.1",     // registered
		"a9r346p3d25vs4g5v37f3r3f28js97kb-hello-2.12.1.drv", // a derivation
		"not-a-store-path",
		"b9r346p3d25vs4g5v37f3r3f28js97kb-held", // lock not released
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n+".lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names[:3] {
		if err := os.Remove(filepath.Join(dir, n+".lock")); err != nil {
			t.Fatal(err)
		}
	}
	// Not a lock file.
	if err := os.WriteFile(filepath.Join(dir, "c9r346p3d25vs4g5v37f3r3f28js97kb-x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "c9r346p3d25vs4g5v37f3r3f28js97kb-x"))
	got, overflow := w.Stop(200*time.Millisecond, 10*time.Second)
	want := []string{filepath.Join(dir, names[0])}
	if !reflect.DeepEqual(got, want) || overflow {
		t.Errorf("got %v (overflow %v), want %v", got, overflow, want)
	}
}

// A lock deleted just before Stop, after a quiet spell longer than quiet
// (a long build whose output is registered as the command ends), is
// still seen: the event may not have been read yet when Stop is called.
func TestLockDeletedJustBeforeStop(t *testing.T) {
	for i := range 10 {
		dir := t.TempDir()
		w, err := Start(dir)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "l9r346p3d25vs4g5v37f3r3f28js97kb-hello-2.12.1")
		if err := os.WriteFile(p+".lock", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
		if err := os.Remove(p + ".lock"); err != nil {
			t.Fatal(err)
		}
		got, _ := w.Stop(50*time.Millisecond, 10*time.Second)
		if !reflect.DeepEqual(got, []string{p}) {
			t.Fatalf("round %d: got %v, want %s", i, got, p)
		}
	}
}
