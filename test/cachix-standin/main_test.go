package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		args []string
		want Args
	}{
		{[]string{"push", "c"}, Args{Command: "push", Cache: "c", Paths: []string{}}},
		{[]string{"push", "c", "/nix/store/x", "/nix/store/y"},
			Args{Command: "push", Cache: "c", Paths: []string{"/nix/store/x", "/nix/store/y"}}},
		{[]string{"push", "-j", "8", "c"}, Args{Command: "push", Jobs: 8, Cache: "c", Paths: []string{}}},
		{[]string{"push", "-j8", "c"}, Args{Command: "push", Jobs: 8, Cache: "c", Paths: []string{}}},
		{[]string{"push", "--jobs", "8", "c"}, Args{Command: "push", Jobs: 8, Cache: "c", Paths: []string{}}},
		{[]string{"push", "--jobs=8", "c"}, Args{Command: "push", Jobs: 8, Cache: "c", Paths: []string{}}},
		{[]string{"push", "c", "-j", "3", "/p"}, Args{Command: "push", Jobs: 3, Cache: "c", Paths: []string{"/p"}}},
		{[]string{"push", "-m", "xz", "-l", "0", "-s", "5242880", "-n", "4", "--omit-deriver", "c"},
			Args{Command: "push", CompressionMethod: "xz", LevelGiven: true, ChunkSize: 5 << 20,
				NumChunks: 4, OmitDeriver: true, Cache: "c", Paths: []string{}}},
		{[]string{"push", "--compression-method=zstd", "--compression-level", "16",
			"--chunk-size=5368709120", "--num-concurrent-chunks", "2", "c"},
			Args{Command: "push", CompressionMethod: "zstd", CompressionLevel: 16, LevelGiven: true,
				ChunkSize: 5 << 30, NumChunks: 2, Cache: "c", Paths: []string{}}},
		{[]string{"-c", "/cfg", "--host", "https://x", "-v", "push", "c"},
			Args{Config: "/cfg", Host: "https://x", Verbose: true, Command: "push", Cache: "c", Paths: []string{}}},
		{[]string{"--hostname=https://x", "push", "c"},
			Args{Host: "https://x", Command: "push", Cache: "c", Paths: []string{}}},
		{[]string{"--config=/cfg", "--verbose", "push", "c"},
			Args{Config: "/cfg", Verbose: true, Command: "push", Cache: "c", Paths: []string{}}},
		// cachix parses with subparserInline: a global option not given
		// before the command may come after it, among push's own.
		{[]string{"push", "-v", "c"}, Args{Verbose: true, Command: "push", Cache: "c", Paths: []string{}}},
		{[]string{"-v", "push", "-j8", "c", "/p", "--config", "/cfg", "--hostname=https://x"},
			Args{Config: "/cfg", Host: "https://x", Verbose: true, Command: "push", Jobs: 8, Cache: "c", Paths: []string{"/p"}}},
		{[]string{"push", "c", "--", "-v"}, Args{Command: "push", Cache: "c", Paths: []string{"-v"}}},
		{[]string{"-c/cfg", "push", "c"}, Args{Config: "/cfg", Command: "push", Cache: "c", Paths: []string{}}},
		{[]string{"push", "c", "--", "-odd"}, Args{Command: "push", Cache: "c", Paths: []string{"-odd"}}},
		{[]string{"--help"}, Args{Command: "help"}},
		{[]string{"push", "--help"}, Args{Command: "help"}},
		{[]string{"--version"}, Args{Command: "version"}},
		{[]string{"version"}, Args{Command: "version"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.args)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.args, err)
			continue
		}
		if got.Paths == nil && tt.want.Paths != nil {
			got.Paths = []string{}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) =\n %+v, want\n %+v", tt.args, got, tt.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		args []string
		msg  string // part of the error
	}{
		{[]string{"push", "--foo", "c"}, "Invalid option `--foo'"},
		{[]string{"push", "--omit-deps", "c"}, "Invalid option `--omit-deps'"},
		{[]string{"push", "-x", "c"}, "Invalid option `-x'"},
		{[]string{"--foo", "push", "c"}, "Invalid option `--foo'"},
		{[]string{"-j", "8", "push", "c"}, "Invalid option `-j'"}, // push option before the command
		{[]string{"push", "--omit-deriver=yes", "c"}, "Invalid option"},
		{[]string{"push"}, "Missing: CACHE"},
		{[]string{"push", "-j", "8"}, "Missing: CACHE"},
		{[]string{}, "Missing: COMMAND"},
		{[]string{"-v"}, "Missing: COMMAND"},
		{[]string{"push", "-l", "17", "c"}, "between 0 and 16"},
		{[]string{"push", "-l", "-1", "c"}, "cannot parse"},
		{[]string{"push", "-m", "gzip", "c"}, "not supported"},
		{[]string{"push", "-j", "eight", "c"}, "cannot parse value `eight'"},
		{[]string{"push", "--jobs=", "c"}, "cannot parse"},
		{[]string{"push", "-s", "1k", "c"}, "cannot parse"},
		// optparse's auto is Haskell's reads: no "+", no trailing space.
		{[]string{"push", "-j", "+8", "c"}, "cannot parse value `+8'"},
		{[]string{"push", "--compression-level=+3", "c"}, "cannot parse value `+3'"},
		{[]string{"push", "-n", "4 ", "c"}, "cannot parse value `4 '"},
		// cachix's chunk size is 5 MiB to 5 GiB (validateChunkSize).
		{[]string{"push", "-s", "1024", "c"}, "not in expected range"},
		{[]string{"push", "--chunk-size=5242879", "c"}, "not in expected range"},
		{[]string{"push", "-s", "5368709121", "c"}, "not in expected range"},
		// optparse-applicative takes an option once: a second one is
		// invalid, whichever of its names it is given by.
		{[]string{"push", "-j", "8", "-j", "4", "c"}, "Invalid option `-j'"},
		{[]string{"push", "-j", "8", "c", "--jobs=4"}, "Invalid option `--jobs=4'"},
		{[]string{"push", "--omit-deriver", "--omit-deriver", "c"}, "Invalid option `--omit-deriver'"},
		{[]string{"push", "-m", "xz", "--compression-method", "zstd", "c"}, "Invalid option `--compression-method'"},
		{[]string{"push", "-l", "1", "-l1", "c"}, "Invalid option `-l1'"},
		{[]string{"-v", "--verbose", "push", "c"}, "Invalid option `--verbose'"},
		{[]string{"-c", "/a", "--config=/b", "push", "c"}, "Invalid option `--config=/b'"},
		{[]string{"--host", "https://a", "--host", "https://b", "push", "c"}, "Invalid option `--host'"},
		{[]string{"--host", "https://a", "--hostname", "https://b", "push", "c"}, "Invalid option `--hostname'"},
		// Each once in all, before the command or after it.
		{[]string{"-v", "push", "-v", "c"}, "Invalid option `-v'"},
		{[]string{"push", "--verbose", "c", "-v"}, "Invalid option `-v'"},
		{[]string{"-c", "/a", "push", "c", "--config=/b"}, "Invalid option `--config=/b'"},
		{[]string{"--host", "https://a", "push", "--hostname", "https://b", "c"}, "Invalid option `--hostname'"},
		{[]string{"push", "--host=https://a", "c", "--host", "https://b"}, "Invalid option `--host'"},
		{[]string{"push", "c", "-c"}, "expects an argument"},
		{[]string{"push", "c", "-j"}, "expects an argument"},
		{[]string{"watch-store", "c"}, "supports only the push and pin commands"},
		{[]string{"daemon", "push", "c"}, "supports only the push and pin commands"},
		{[]string{"push", "../escape"}, "invalid cache name"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.args)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Parse(%q) = %v, want a UsageError", tt.args, err)
			continue
		}
		if !strings.Contains(ue.Msg, tt.msg) {
			t.Errorf("Parse(%q) error %q, want it to contain %q", tt.args, ue.Msg, tt.msg)
		}
	}
}

// buildStandin compiles the stand-in into a fresh temporary directory.
func buildStandin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cachix")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	stdout, stderr string
	exit           int
}

// runStandin runs bin with a clean environment: no inherited cachix
// variables and a HOME without a cachix config, plus env.
func runStandin(t *testing.T, bin string, env []string, stdin string, args ...string) result {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CACHIX_") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "NIX_STORE_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", bin, err)
	}
	return result{o.String(), e.String(), cmd.ProcessState.ExitCode()}
}

// readLog returns the records of invocations.jsonl under root.
func readLog(t *testing.T, root string) []record {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "invocations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record
	s := bufio.NewScanner(f)
	for s.Scan() {
		var r record
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			t.Fatalf("bad log line %q: %v", s.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestBinaryWithoutNix checks the executable's behaviour up to the point
// where it would run Nix, against a fake store (NIX_STORE_DIR), so it runs
// on any machine.
func TestBinaryWithoutNix(t *testing.T) {
	bin := buildStandin(t)
	store := t.TempDir()
	p := filepath.Join(store, "0123456789abcdfghijklmnpqrsvwxyz-fake-1.0")
	bad := filepath.Join(store, "0123456789abcdfghijklmnpqrsvwxy0-bad-2.0")
	for _, f := range []string{p, bad} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	storeEnv := "NIX_STORE_DIR=" + store

	t.Run("help and usage errors", func(t *testing.T) {
		if r := runStandin(t, bin, nil, "", "--help"); r.exit != 0 || !strings.Contains(r.stdout, "Usage: cachix") {
			t.Errorf("--help: %+v", r)
		}
		r := runStandin(t, bin, nil, "", "push", "--omit-deps", "c", p)
		if r.exit != 1 || !strings.Contains(r.stderr, "Invalid option `--omit-deps'") || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("--omit-deps: %+v", r)
		}
	})

	t.Run("root required", func(t *testing.T) {
		r := runStandin(t, bin, []string{"CACHIX_AUTH_TOKEN=tok", storeEnv}, "", "push", "c", p)
		if r.exit != 1 || !strings.Contains(r.stderr, "CACHIX_STANDIN_ROOT") {
			t.Errorf("%+v", r)
		}
	})

	t.Run("no auth", func(t *testing.T) {
		root := t.TempDir()
		r := runStandin(t, bin, []string{"CACHIX_STANDIN_ROOT=" + root, storeEnv}, "", "push", "c", p)
		if r.exit != 1 || !strings.Contains(r.stderr, "Neither auth token nor signing key are present.") {
			t.Errorf("%+v", r)
		}
		if recs := readLog(t, root); len(recs) != 1 || recs[0].Exit != 1 || recs[0].TokenSHA256 != "" ||
			!reflect.DeepEqual(recs[0].Paths, []string{p}) {
			t.Errorf("log: %+v", recs)
		}
	})

	t.Run("invalid paths", func(t *testing.T) {
		root := t.TempDir()
		env := []string{"CACHIX_STANDIN_ROOT=" + root, "CACHIX_AUTH_TOKEN=tok", storeEnv}
		for _, q := range []string{p + "x", "/tmp", p + "/sub", "relative"} {
			// Warned about, skipped, exit 0, as cachix.
			if r := runStandin(t, bin, env, "", "push", "c", q); r.exit != 0 || !strings.Contains(r.stderr, "Warning: "+q) || !strings.Contains(r.stderr, ", skipping") {
				t.Errorf("path %s: %+v", q, r)
			}
		}
	})

	t.Run("config token, stdin paths, fail paths", func(t *testing.T) {
		root := t.TempDir()
		cfg := filepath.Join(t.TempDir(), "c.dhall")
		os.WriteFile(cfg, []byte(`{ authToken = "cfgtok", hostname = "https://cachix.org", binaryCaches = [] : List { name : Text, secretKey : Text } }`), 0o600)
		env := []string{"CACHIX_STANDIN_ROOT=" + root, storeEnv, "CACHIX_STANDIN_FAIL_PATHS=nomatch bad-*"}
		r := runStandin(t, bin, env, p+"\n  "+bad+"\n", "-c", cfg, "push", "c")
		if r.exit != 1 || !strings.Contains(r.stderr, "simulated failure for "+bad) {
			t.Errorf("%+v", r)
		}
		recs := readLog(t, root)
		if len(recs) != 1 || recs[0].TokenSHA256 != sha("cfgtok") || recs[0].Auth != "config" ||
			!reflect.DeepEqual(recs[0].Paths, []string{p, bad}) || recs[0].Cache != "c" {
			t.Errorf("log: %+v", recs)
		}
	})

	t.Run("delay", func(t *testing.T) {
		env := []string{"CACHIX_STANDIN_ROOT=" + t.TempDir(), "CACHIX_AUTH_TOKEN=tok", storeEnv,
			"CACHIX_STANDIN_DELAY=300ms", "CACHIX_STANDIN_FAIL=1"}
		start := time.Now()
		r := runStandin(t, bin, env, "", "push", "c", p)
		if d := time.Since(start); d < 300*time.Millisecond || !strings.Contains(r.stderr, "simulated failure 1 of 1") {
			t.Errorf("took %v: %+v", d, r)
		}
	})

	t.Run("turns", func(t *testing.T) {
		root := t.TempDir()
		turns := filepath.Join(t.TempDir(), "turns")
		env := []string{"CACHIX_STANDIN_ROOT=" + root, "CACHIX_AUTH_TOKEN=tok", storeEnv,
			"CACHIX_STANDIN_TURNS=" + turns, "CACHIX_STANDIN_FAIL=2"}
		took := func(n string) func() bool {
			return func() bool { b, _ := os.ReadFile(filepath.Join(root, ".turn-count")); return string(b) == n+"\n" }
		}
		first, second := make(chan result, 1), make(chan result, 1)
		go func() { first <- runStandin(t, bin, env, "", "push", "c", p) }()
		eventually.True(t, eventually.Left(t), "the first push to take its turn", took("1"))
		go func() { second <- runStandin(t, bin, env, "", "push", "c", p) }()
		eventually.True(t, eventually.Left(t), "the second push to take its turn", took("2"))
		if err := os.WriteFile(turns, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-first:
			if !strings.Contains(r.stderr, "simulated failure 1 of 2") {
				t.Errorf("the first push let through: %+v", r)
			}
		case <-time.After(eventually.Left(t)):
			t.Fatal("a byte in the turns file did not let the first push through")
		}
		select {
		case r := <-second:
			t.Errorf("the second push went on one byte: %+v", r)
		default:
		}
		if err := os.WriteFile(turns, []byte("xx"), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-second:
			if !strings.Contains(r.stderr, "simulated failure 2 of 2") {
				t.Errorf("the second push let through: %+v", r)
			}
		case <-time.After(eventually.Left(t)):
			t.Fatal("a second byte in the turns file did not let the second push through")
		}
	})

	t.Run("concurrent fail counter", func(t *testing.T) {
		root := t.TempDir()
		const n = 8
		env := []string{"CACHIX_STANDIN_ROOT=" + root, "CACHIX_AUTH_TOKEN=tok", storeEnv, fmt.Sprintf("CACHIX_STANDIN_FAIL=%d", n)}
		var wg sync.WaitGroup
		msgs := make([]string, n)
		for i := range n {
			wg.Go(func() {
				r := runStandin(t, bin, env, "", "push", "c", p)
				if r.exit != 1 {
					t.Errorf("exit %d", r.exit)
				}
				msgs[i] = strings.TrimSpace(r.stderr)
			})
		}
		wg.Wait()
		sort.Strings(msgs)
		for k := 1; k <= n; k++ {
			want := fmt.Sprintf("cachix: simulated failure %d of %d", k, n)
			if !strings.Contains(strings.Join(msgs, "\n"), want) {
				t.Errorf("no %q among %q", want, msgs)
			}
		}
		if recs := readLog(t, root); len(recs) != n {
			t.Errorf("%d log lines, want %d", len(recs), n)
		}
	})
}

// TestEndToEndNix pushes a real two-path closure with real Nix.
func TestEndToEndNix(t *testing.T) {
	salt := nixtest.Salt()
	_, outs := nixtest.Build(t, fmt.Sprintf(`let dep = derivation { name = "standin-dep-%[1]s"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; };
in derivation { name = "standin-test-%[1]s"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out" ]; }`, salt))
	top := outs[0]
	refs, err := exec.Command("nix-store", "-qR", top).Output()
	if err != nil {
		t.Fatalf("nix-store -qR: %v", err)
	}
	closure := strings.Fields(string(refs))
	if len(closure) != 2 {
		t.Fatalf("closure of %s is %q, want 2 paths", top, closure)
	}

	bin := buildStandin(t)
	root := t.TempDir()
	const token = "secret-token-e2e"
	r := runStandin(t, bin, []string{"CACHIX_STANDIN_ROOT=" + root, "CACHIX_AUTH_TOKEN=" + token},
		"", "push", "-j", "2", "mycache", top)
	if r.exit != 0 || !strings.Contains(r.stdout, "All done.") {
		t.Fatalf("push: %+v", r)
	}
	for _, p := range closure {
		hash := filepath.Base(p)[:32]
		ni, err := os.ReadFile(filepath.Join(root, "mycache", hash+".narinfo"))
		if err != nil {
			t.Fatalf("closure member %s not pushed: %v", p, err)
		}
		if !strings.Contains(string(ni), "StorePath: "+p+"\n") {
			t.Errorf("narinfo for %s lacks its StorePath line:\n%s", p, ni)
		}
		// Compressed as it says ("using zstd"), cachix's default.
		if !strings.Contains(string(ni), "Compression: zstd\n") {
			t.Errorf("narinfo for %s, pushed with zstd:\n%s", p, ni)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(root, "invocations.jsonl"))
	if strings.Contains(string(raw), token) {
		t.Errorf("token written to the log")
	}
	recs := readLog(t, root)
	if len(recs) != 1 || recs[0].TokenSHA256 != sha(token) || recs[0].Exit != 0 ||
		!reflect.DeepEqual(recs[0].Paths, []string{top}) {
		t.Errorf("log: %+v", recs)
	}

	// Paths from stdin, into another cache, with xz.
	r = runStandin(t, bin, []string{"CACHIX_STANDIN_ROOT=" + root, "CACHIX_AUTH_TOKEN=" + token}, top+"\n", "push", "-m", "xz", "other")
	if ni, err := os.ReadFile(filepath.Join(root, "other", filepath.Base(top)[:32]+".narinfo")); r.exit != 0 || err != nil || !strings.Contains(string(ni), "Compression: xz\n") {
		t.Errorf("stdin push with -m xz: %+v, %v\n%s", r, err, ni)
	}

	// No token: cachix's message, nothing pushed.
	r = runStandin(t, bin, []string{"CACHIX_STANDIN_ROOT=" + root}, "", "push", "third", top)
	if r.exit != 1 || !strings.Contains(r.stderr, "Neither auth token nor signing key are present.") {
		t.Errorf("no token: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(root, "third")); err == nil {
		t.Errorf("pushed without a token")
	}
}

// TestParsePin: cachix's pin grammar (OptionsParser.hs, pinOptionsParser):
// three arguments, repeated -a/--artifact, and at most one of the keep
// options, which exclude each other.
func TestParsePin(t *testing.T) {
	p := "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-sys"
	ok := []struct {
		args []string
		want Args
	}{
		{[]string{"pin", "c", "n", p}, Args{Command: "pin", Cache: "c", PinName: "n", PinPath: p, Paths: []string{p}}},
		{[]string{"pin", "--keep-revisions", "3", "c", "n", p}, Args{Command: "pin", Cache: "c", PinName: "n", PinPath: p, Paths: []string{p}, Keep: "revisions", KeepN: 3}},
		{[]string{"pin", "c", "n", p, "--keep-days=7"}, Args{Command: "pin", Cache: "c", PinName: "n", PinPath: p, Paths: []string{p}, Keep: "days", KeepN: 7}},
		{[]string{"pin", "c", "--keep-forever", "n", p, "-a", "bin/x", "--artifact", "/share/y"},
			Args{Command: "pin", Cache: "c", PinName: "n", PinPath: p, Paths: []string{p}, Keep: "forever", Artifacts: []string{"bin/x", "/share/y"}}},
		{[]string{"pin", "--keep-days", "1", "--", "c", "-odd-name", p}, Args{Command: "pin", Cache: "c", PinName: "-odd-name", PinPath: p, Paths: []string{p}, Keep: "days", KeepN: 1}},
		{[]string{"-c", "/cfg", "pin", "c", "n", p}, Args{Config: "/cfg", Command: "pin", Cache: "c", PinName: "n", PinPath: p, Paths: []string{p}}},
		// subparserInline: the global options may follow the command.
		{[]string{"pin", "-c", "/cfg", "c", "n", p, "--host", "https://x", "-v"},
			Args{Config: "/cfg", Host: "https://x", Verbose: true, Command: "pin", Cache: "c", PinName: "n", PinPath: p, Paths: []string{p}}},
	}
	for _, tt := range ok {
		got, err := Parse(tt.args)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
	bad := []struct {
		args []string
		msg  string
	}{
		{[]string{"pin", "c", "n"}, "Missing: STORE-PATH"},
		{[]string{"pin", "-j", "8", "c", "n", p}, "Invalid option `-j'"},                                                   // push's option
		{[]string{"-c", "/a", "pin", "c", "n", p, "-c", "/b"}, "Invalid option `-c'"},                                      // a global one twice
		{[]string{"pin", "--hostname", "https://a", "c", "n", p, "--host=https://b"}, "Invalid option `--host=https://b'"}, // host or hostname, once
		{[]string{"pin", "c", "n", p, "--verbose=yes"}, "Invalid option `--verbose=yes'"},
		{[]string{"pin"}, "Missing: CACHE-NAME PIN-NAME STORE-PATH"},
		{[]string{"pin", "c", "n", p, "extra"}, "Invalid argument `extra'"},
		{[]string{"pin", "--keep-days", "1", "--keep-revisions", "2", "c", "n", p}, "Invalid option `--keep-revisions'"},
		{[]string{"pin", "--keep-forever", "--keep-days", "2", "c", "n", p}, "Invalid option `--keep-days'"},
		{[]string{"pin", "--keep-revisions", "1", "--keep-revisions", "2", "c", "n", p}, "Invalid option `--keep-revisions'"},
		{[]string{"pin", "--keep-revisions", "three", "c", "n", p}, "cannot parse value `three'"},
		{[]string{"pin", "--keep-days", "7 ", "c", "n", p}, "cannot parse value `7 '"},
		{[]string{"pin", "--keep-revisions=+3", "c", "n", p}, "cannot parse value `+3'"},
		{[]string{"pin", "--keep-revisions"}, "expects an argument"},
		{[]string{"pin", "--keep-forever=yes", "c", "n", p}, "Invalid option"},
		{[]string{"pin", "--keep-weeks", "2", "c", "n", p}, "Invalid option `--keep-weeks'"},
		{[]string{"pin", "c", "n", p, "-a"}, "expects an argument"},
		{[]string{"pin", "../x", "n", p}, "invalid cache name"},
	}
	for _, tt := range bad {
		if _, err := Parse(tt.args); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tt.args, err, tt.msg)
		}
	}
}

// TestPinBinary runs the stand-in's pin: a token is required (a signing
// key is not enough), the path must be in the cache, artifacts must be
// files in it, and each pin made is recorded.
func TestPinBinary(t *testing.T) {
	bin := buildStandin(t)
	store := t.TempDir()
	p := filepath.Join(store, "0123456789abcdfghijklmnpqrsvwxyz-sys-1")
	if err := os.MkdirAll(filepath.Join(p, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p, "bin", "x"), []byte("x"), 0o755)
	root := t.TempDir()
	env := []string{"NIX_STORE_DIR=" + store, "CACHIX_STANDIN_ROOT=" + root}
	args := []string{"pin", "--keep-revisions", "3", "--", "c", "host-system", p}

	if r := runStandin(t, bin, append(env, "CACHIX_SIGNING_KEY=k"), "", args...); r.exit != 1 || !strings.Contains(r.stderr, "auth token") {
		t.Errorf("pin with a signing key only: %+v", r)
	}
	env = append(env, "CACHIX_AUTH_TOKEN=tok")
	if r := runStandin(t, bin, env, "", args...); r.exit != 1 || !strings.Contains(r.stderr, "not in cache c") {
		t.Errorf("pin of a path the cache lacks: %+v", r)
	}
	os.MkdirAll(filepath.Join(root, "c"), 0o755)
	os.WriteFile(filepath.Join(root, "c", "0123456789abcdfghijklmnpqrsvwxyz.narinfo"), []byte("StorePath: "+p+"\n"), 0o644)
	if r := runStandin(t, bin, env, "", "pin", "c", "n", p, "-a", "bin"); r.exit != 1 || !strings.Contains(r.stderr, "doesn't exist") {
		t.Errorf("an artifact that is a directory: %+v", r)
	}
	if r := runStandin(t, bin, env, "", "pin", "-a", "/bin/x", "--keep-revisions", "3", "--", "c", "host-system", p); r.exit != 0 {
		t.Fatalf("pin: %+v", r)
	}
	data, err := os.ReadFile(filepath.Join(root, "pins.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rec pinRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.Cache != "c" || rec.Name != "host-system" || rec.Path != p || rec.Keep != "revisions 3" || !reflect.DeepEqual(rec.Artifacts, []string{"/bin/x"}) {
		t.Errorf("pins.jsonl = %s (%v)", data, err)
	}
	if n := strings.Count(string(data), "\n"); n != 1 {
		t.Errorf("%d pins recorded, want only the one made", n)
	}
}
