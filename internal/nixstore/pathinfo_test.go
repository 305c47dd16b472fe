package nixstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

func TestDecodePathInfo(t *testing.T) {
	// Nix 2.8's list, and the object keyed by path of Nix 2.19 on.
	list := `[{"path":"/nix/store/aaaa-x","valid":false},{"path":"/nix/store/bbbb-y","narHash":"sha256-x","narSize":136,"references":["/nix/store/cccc-z"],"deriver":"/nix/store/dddd-y.drv","ultimate":true}]`
	obj := `{"/nix/store/aaaa-x":null,"/nix/store/bbbb-y":{"narHash":"sha256-x","narSize":136,"references":["cccc-z"],"deriver":"/nix/store/dddd-y.drv"}}`
	// --json-format 2 (Nix 2.33 on), as Nix 2.34.8 prints it.
	v2 := `{"info":{"aaaa-x":null,"bbbb-y":{"ca":null,"deriver":"dddd-y.drv","narHash":"sha256-x","narSize":136,"references":["cccc-z"],"registrationTime":1796585933,"signatures":[],"storeDir":"/nix/store","ultimate":false,"version":2}},"storeDir":"/nix/store","version":2}`
	for name, in := range map[string]string{"list": list, "object": obj, "format 2": v2} {
		// A byte at a time: as a pipe may hand Nix's output over.
		list, err := decodePathInfo(iotest.OneByteReader(strings.NewReader(in)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := map[string]PathInfo{}
		for _, info := range list {
			out[info.Path] = info
		}
		if x, ok := out["/nix/store/aaaa-x"]; !ok || x.Valid {
			t.Errorf("%s: invalid path: %+v, %v", name, x, ok)
		}
		y := out["/nix/store/bbbb-y"]
		if !y.Valid || y.NarSize != 136 || y.Deriver != "/nix/store/dddd-y.drv" || len(y.References) != 1 || y.References[0] != "/nix/store/cccc-z" {
			t.Errorf("%s: valid path: %+v", name, y)
		}
	}
	for _, bad := range []string{``, `"x"`, `[{"path":1}]`, `[{"path":"/a"}`, `[] x`, `{} {}`, `{"/a":1}`, `{"info":{"bbbb-y":{}}}`, `{"info":[],"storeDir":"/nix/store"}`} {
		if _, err := decodePathInfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestPathInfosChunks checks that paths are split only past the argument
// limit, with a stand-in nix that logs its calls.
func TestPathInfosChunks(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$#\" >> " + log + "\necho '[]'\n"
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range 100 {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-p", i))
	}
	n := Nix{BinDir: dir}
	if _, err := n.pathInfos(context.Background(), false, 1000, paths); err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(log)
	// 100 paths of 46 bytes (with the separator) in chunks of at most
	// 1000 bytes: 21 a call, 5 calls.
	if got := strings.Fields(string(calls)); len(got) != 5 {
		t.Errorf("calls (argument counts) = %q, want 5 calls", got)
	}
	os.Remove(log)
	if _, err := n.PathInfos(context.Background(), false, paths...); err != nil {
		t.Fatal(err)
	}
	if calls, _ := os.ReadFile(log); len(strings.Fields(string(calls))) != 1 {
		t.Errorf("with the real limit: %q, want one call", calls)
	}
}

// A Nix that refuses --json without --json-format (Nix 2.34 deprecates
// it, to become an error) is asked again for format 2, which is read as
// the others; a Nix before 2.33 never sees the flag.
func TestPathInfoJSONFormat(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n" +
		"case \"$*\" in *--json-format*) ;; *) echo \"error: '--json' without '--json-format' is no longer supported\" >&2; exit 1;; esac\n" +
		"echo '{\"info\":{\"bbbb-y\":{\"narSize\":136,\"references\":[],\"deriver\":null}},\"storeDir\":\"/nix/store\",\"version\":2}'\n"
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	infos, err := Nix{BinDir: dir}.pathInfos(context.Background(), false, maxArgBytes, []string{"/nix/store/bbbb-y"})
	if err != nil {
		t.Fatal(err)
	}
	if y := infos["/nix/store/bbbb-y"]; !y.Valid || y.NarSize != 136 {
		t.Errorf("infos = %+v", infos)
	}
	calls, _ := os.ReadFile(log)
	if lines := strings.Split(strings.TrimSpace(string(calls)), "\n"); len(lines) != 2 || strings.Contains(lines[0], "--json-format") || !strings.Contains(lines[1], "--json-format 2") {
		t.Errorf("calls = %q, want the plain --json, then --json-format 2", lines)
	}
}

// TestPathInfosRealNix asks Nix about a built app, its dependency (with
// --recursive) and a path that is not in the store.
func TestPathInfosRealNix(t *testing.T) {
	salt := nixtest.Salt()
	_, outs := nixtest.Build(t, fmt.Sprintf(`let dep = derivation { name = "pi-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; };
in derivation { name = "pi-app"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out" ]; }`, salt))
	app := outs[0]
	missing := "/nix/store/00000000000000000000000000000000-pi-missing"
	infos, err := Nix{}.PathInfos(context.Background(), true, app, missing)
	if err != nil {
		t.Fatal(err)
	}
	a := infos[app]
	if !a.Valid || a.NarSize <= 0 || !strings.HasSuffix(a.Deriver, "-pi-app.drv") || len(a.References) != 1 {
		t.Fatalf("app: %+v", a)
	}
	if d := infos[a.References[0]]; !d.Valid || !strings.HasSuffix(d.Path, "-pi-dep") {
		t.Errorf("--recursive did not give the dependency: %+v", infos)
	}
	if m, ok := infos[missing]; !ok || m.Valid {
		t.Errorf("missing path: %+v, %v", m, ok)
	}
}

// TestPathInfoFallbackHangWithChildHoldingStdout guards the end of the
// one-shot `nix path-info --json` (the fallback when the serve handshake
// fails) once its context ends: Nix prints its answer, then hangs with a
// child holding stdout. Killing nix alone left decodePathInfo waiting
// for an EOF that the child held off, for good (the command had no
// WaitDelay and no group kill).
func TestPathInfoFallbackHangWithChildHoldingStdout(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	killPidFile(t, pids)
	// nix-store without the serve protocol: PathInfos falls back.
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '{}'\nsleep 3600 &\necho $! >> " + pids + "\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	endsWithContext(t, time.Second, func(ctx context.Context) error {
		_, err := Nix{BinDir: dir}.PathInfos(ctx, false, "/nix/store/00000000000000000000000000000000-hang")
		return err
	})
}

// A nix path-info whose output is not JSON, and does not end, is ended
// at once: its output is not read on to the path-info timeout (5 min).
func TestPathInfoBadOutputEndsIt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte("#!/bin/sh\nprintf '[garbage'\nexec yes\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := Nix{BinDir: dir}.pathInfo(context.Background(), false, []string{"/nix/store/00000000000000000000000000000000-x"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "reading its output") {
			t.Errorf("err = %v, want one about its output", err)
		}
		// The path-info timeout is the call's only other end, and it
		// cannot come sooner: a call back before it was ended by the
		// bad output, however slow the machine.
		if took := time.Since(start); took >= pathInfoTimeout {
			t.Errorf("pathInfo took %v: ended by the path-info timeout, not by its bad output", took)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("pathInfo still reading an endless output: not ended by its bad output")
	}
}

// A content-addressed path's deriver is the word of whoever added it: the
// daemon keeps the one an untrusted user's unsigned import claims. Such a
// path counts as added unless Nix built it here ("ultimate", which only
// nix path-info --json gives: BuiltHere).
func TestAddedContentAddressed(t *testing.T) {
	drv := "/nix/store/dddd-y.drv"
	for _, c := range []struct {
		name  string
		info  PathInfo
		added bool
	}{
		{"no deriver", PathInfo{CA: true}, true},
		{"claimed deriver", PathInfo{Deriver: drv, CA: true}, true},
		{"built here", PathInfo{Deriver: drv, CA: true, Ultimate: true}, false},
		{"signed", PathInfo{Deriver: drv, CA: true, Signatures: []string{"cache:x"}}, false},
		{"input-addressed", PathInfo{Deriver: drv}, false},
	} {
		if got := c.info.Added(); got != c.added {
			t.Errorf("%s: Added() = %v, want %v", c.name, got, c.added)
		}
	}
	dir := t.TempDir()
	script := "#!/bin/sh\necho '" + `{"/nix/store/aaaa-x":{"ca":"fixed:r:sha256:1b","deriver":"/nix/store/dddd-x.drv","narSize":1,"references":[],"ultimate":true},` +
		`"/nix/store/bbbb-y":{"ca":{"method":"nar","hash":"sha256-x"},"deriver":"/nix/store/dddd-y.drv","narSize":1,"references":[],"ultimate":false},"/nix/store/cccc-z":null}` + "'\n"
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	built, err := Nix{BinDir: dir}.BuiltHere(context.Background(), []string{"/nix/store/aaaa-x", "/nix/store/bbbb-y", "/nix/store/cccc-z"})
	if err != nil {
		t.Fatal(err)
	}
	if !built["/nix/store/aaaa-x"] || built["/nix/store/bbbb-y"] || built["/nix/store/cccc-z"] {
		t.Errorf("BuiltHere = %v, want aaaa-x alone", built)
	}
	infos, err := Nix{BinDir: dir}.pathInfos(context.Background(), false, maxArgBytes, []string{"/nix/store/aaaa-x"})
	if err != nil {
		t.Fatal(err)
	}
	if !infos["/nix/store/aaaa-x"].ContentAddressed() || !infos["/nix/store/bbbb-y"].ContentAddressed() {
		t.Errorf("content addresses not read: %+v", infos)
	}
}
