package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// The test binary doubles as a fake cachix and a fake nix: with
// PUSHER_TEST_FAKE=1 it records its argv and environment in the file
// PUSHER_TEST_RECORD, prints PUSHER_TEST_OUTPUT (or a line with the
// token), sleeps PUSHER_TEST_SLEEP (or until the record is gone) and
// exits with PUSHER_TEST_EXIT.
const (
	envFake   = "PUSHER_TEST_FAKE"
	envRecord = "PUSHER_TEST_RECORD"
	envExit   = "PUSHER_TEST_EXIT"
	envOutput = "PUSHER_TEST_OUTPUT"
	envSleep  = "PUSHER_TEST_SLEEP"
	// envGrandchild names a file: the fake starts a grandchild holding
	// its output and writes the grandchild's pid there.
	envGrandchild = "PUSHER_TEST_GRANDCHILD"
	// envQuietGrandchild: the same, but the grandchild's output goes
	// to /dev/null: nothing holds the pipe once the fake exits.
	envQuietGrandchild = "PUSHER_TEST_QUIET_GRANDCHILD"
	// envLines: the fake prints that many lines as nix copy does, a
	// write each, lineGap apart.
	envLines = "PUSHER_TEST_LINES"
)

const lineGap = 100 * time.Microsecond

type record struct {
	Args  []string `json:"args"`
	Token string   `json:"token"`
	// TokenVars counts CACHIX_AUTH_TOKEN= entries in the environment.
	TokenVars int    `json:"token_vars"`
	Path      string `json:"path"`
}

func TestMain(m *testing.M) {
	if os.Getenv(envFake) == "1" {
		os.Exit(fakeMain())
	}
	os.Exit(m.Run())
}

func fakeMain() int {
	r := record{Args: os.Args, Token: os.Getenv("CACHIX_AUTH_TOKEN"), Path: os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CACHIX_AUTH_TOKEN=") {
			r.TokenVars++
		}
	}
	data, _ := json.Marshal(r)
	if err := os.WriteFile(os.Getenv(envRecord), data, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 99
	}
	if out, ok := os.LookupEnv(envOutput); ok {
		fmt.Print(out)
	} else {
		fmt.Printf("compressing with token %s\n", r.Token)
		fmt.Fprintf(os.Stderr, "error: token %s was rejected\n", r.Token)
	}
	if n, _ := strconv.Atoi(os.Getenv(envLines)); n > 0 {
		next := time.Now()
		for i := range n {
			// Spun, not slept: a sleep this short is not kept.
			for time.Now().Before(next) {
			}
			next = next.Add(lineGap)
			fmt.Fprintf(os.Stderr, "copying path '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-p%d' to 'file:///cache'...\n", i)
		}
	}
	pidFile, quiet := os.Getenv(envGrandchild), false
	if pidFile == "" {
		pidFile, quiet = os.Getenv(envQuietGrandchild), true
	}
	if pidFile != "" {
		// A grandchild that holds the output pipe, or not.
		c := exec.Command("sleep", "3600")
		if !quiet {
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
		}
		if err := c.Start(); err != nil {
			return 98
		}
		// Whole or not at all (a temporary file renamed): a test that
		// saw the file empty once read pid 0, and killing "0" killed
		// its whole process group (go test, make, CI's script).
		tmp := pidFile + ".tmp"
		if os.WriteFile(tmp, []byte(strconv.Itoa(c.Process.Pid)), 0o600) != nil || os.Rename(tmp, pidFile) != nil {
			return 97
		}
	}
	if s := os.Getenv(envSleep); s != "" {
		// Or until the record goes with the test's temporary
		// directory: a fake left running by a failed test must not
		// outlive it (for an hour).
		d, _ := time.ParseDuration(s)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(min(50*time.Millisecond, time.Until(end))) {
			if _, err := os.Stat(os.Getenv(envRecord)); err != nil {
				break
			}
		}
	}
	code, _ := strconv.Atoi(os.Getenv(envExit))
	return code
}

// fake sets up the environment for the test binary to act as a fake and
// returns the file it will record into.
func fake(t *testing.T, exit int) string {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "record.json")
	t.Setenv(envFake, "1")
	t.Setenv(envRecord, rec)
	t.Setenv(envExit, strconv.Itoa(exit))
	// A race-enabled test binary otherwise sleeps 1s when it exits 0.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	return rec
}

func readRecord(t *testing.T, file string) record {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the fake did not run: %v", err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func exe(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const token = "s3cr3t-T0KEN-value"

func tokenFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		t.Fatal(err)
	}
	return f
}

var paths = []string{
	"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1",
	"/nix/store/zyxwvsrqpnmlkjihgfdcba9876543210-hello-2.12.1-man",
}

func cachixPusherFor(t *testing.T, tokFile string, args ...string) Pusher {
	t.Helper()
	cfg := &config.Config{Cachix: config.Cachix{Bin: exe(t), AuthTokenFile: tokFile, PushArgs: args}}
	p := New(cfg, &config.Target{Name: "main", Cache: "mycache"})
	if _, ok := p.(*cachixPusher); !ok {
		t.Fatalf("New for a cache target = %T, want *cachixPusher", p)
	}
	return p
}

func TestCachixArgvAndToken(t *testing.T) {
	rec := fake(t, 0)
	// A token in the worker's own environment is replaced by the file's.
	t.Setenv("CACHIX_AUTH_TOKEN", "from-the-environment")
	p := cachixPusherFor(t, tokenFile(t, 0o600), "--compression-level", "3")
	var out bytes.Buffer
	if err := p.Push(context.Background(), paths, &out); err != nil {
		t.Fatalf("Push = %v", err)
	}
	r := readRecord(t, rec)
	want := append([]string{exe(t), "push", "--compression-level", "3", "--", "mycache"}, paths...)
	if !slices.Equal(r.Args, want) {
		t.Errorf("argv = %q, want %q", r.Args, want)
	}
	for _, a := range r.Args {
		if strings.Contains(a, token) {
			t.Errorf("the token is in argv: %q", r.Args)
		}
	}
	if r.Token != token || r.TokenVars != 1 {
		t.Errorf("child's CACHIX_AUTH_TOKEN = %q (%d entries), want the file's token once", r.Token, r.TokenVars)
	}
	if strings.Contains(out.String(), token) {
		t.Errorf("the token reached the output: %q", out.String())
	}
	if !strings.Contains(out.String(), "compressing with token [redacted]\n") || !strings.Contains(out.String(), "error: token [redacted] was rejected\n") {
		t.Errorf("output = %q, want both lines with the token redacted", out.String())
	}
}

func TestCachixNoTokenFile(t *testing.T) {
	rec := fake(t, 0)
	t.Setenv("CACHIX_AUTH_TOKEN", "from-the-environment")
	p := cachixPusherFor(t, "")
	var out bytes.Buffer
	if err := p.Push(context.Background(), paths[:1], &out); err != nil {
		t.Fatalf("Push = %v", err)
	}
	r := readRecord(t, rec)
	if want := []string{exe(t), "push", "--", "mycache", paths[0]}; !slices.Equal(r.Args, want) {
		t.Errorf("argv = %q, want %q", r.Args, want)
	}
	// Without a token file, cachix uses its own configuration or the
	// environment's token, which is passed on untouched.
	if r.Token != "from-the-environment" {
		t.Errorf("child's CACHIX_AUTH_TOKEN = %q, want the inherited one", r.Token)
	}
}

func TestCachixFailureRedacted(t *testing.T) {
	fake(t, 3)
	p := cachixPusherFor(t, tokenFile(t, 0o600))
	var out bytes.Buffer
	err := p.Push(context.Background(), paths, &out)
	if err == nil {
		t.Fatal("Push with cachix exiting 3 succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, token) {
		t.Errorf("the token is in the error: %q", msg)
	}
	if !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "[redacted]") || !strings.Contains(msg, "was rejected") {
		t.Errorf("error = %q, want the exit status and the redacted output", msg)
	}
	if strings.Contains(out.String(), token) || !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("output = %q, want the token redacted", out.String())
	}
}

func TestCachixFailureMessage(t *testing.T) {
	for _, tc := range []struct {
		name, output string
		want         []string
		notWant      []string
	}{
		{"silent", "", []string{"exit status 1 and printed nothing"}, nil},
		{"last three lines", "one\ntwo\nthree\nfour\nfive\n", []string{"three | four | five"}, []string{"two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake(t, 1)
			t.Setenv(envOutput, tc.output)
			err := cachixPusherFor(t, "").Push(context.Background(), paths, &bytes.Buffer{})
			if err == nil {
				t.Fatal("Push succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q contains %q", err, w)
				}
			}
		})
	}
}

func TestCachixOutputWithoutFinalNewline(t *testing.T) {
	fake(t, 0)
	t.Setenv(envOutput, "first line\nlast line without newline "+token)
	var out bytes.Buffer
	if err := cachixPusherFor(t, tokenFile(t, 0o600)).Push(context.Background(), paths, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), token) {
		t.Errorf("the token reached the output: %q", out.String())
	}
	if !strings.Contains(out.String(), "first line\n") {
		t.Errorf("output = %q", out.String())
	}
	if !strings.Contains(out.String(), "last line without newline [redacted]") {
		t.Errorf("with a token file, output after the last newline never reaches out: "+
			"run() does not flush the redactor's buffer after cmd.Run (out = %q)", out.String())
	}
}

func TestCachixUnsafeTokenFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the ownership checks apply to root only")
	}
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		rec := fake(t, 0)
		err := cachixPusherFor(t, tokenFile(t, mode)).Push(context.Background(), paths, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("mode %04o: Push = %v, want the token file refused", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("mode %04o: the error shows the token: %v", mode, err)
		}
		if _, err := os.Stat(rec); err == nil {
			t.Errorf("mode %04o: cachix ran with an unsafe token file", mode)
		}
	}
}

func TestCachixMissingOrEmptyTokenFile(t *testing.T) {
	rec := fake(t, 0)
	missing := filepath.Join(t.TempDir(), "nope")
	if err := cachixPusherFor(t, missing).Push(context.Background(), paths, &bytes.Buffer{}); err == nil {
		t.Error("Push with a missing token file succeeded")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cachixPusherFor(t, empty).Push(context.Background(), paths, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Push with an empty token file = %v", err)
	}
	if _, err := os.Stat(rec); err == nil {
		t.Error("cachix ran without a usable token")
	}
}

func TestCachixNixOnPath(t *testing.T) {
	rec := fake(t, 0)
	t.Setenv("PATH", "/usr/bin:/bin")
	cfg := &config.Config{Cachix: config.Cachix{Bin: exe(t)}, Nix: config.Nix{BinDir: "/usr/bin"}}
	if err := New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if r := readRecord(t, rec); r.Path != "/usr/bin:/usr/bin:/bin" {
		t.Errorf("cachix's PATH = %q, want nix.bin_dir first", r.Path)
	}
	if os.Getenv("PATH") != "/usr/bin:/bin" {
		t.Errorf("Push changed the worker's own PATH to %q", os.Getenv("PATH"))
	}
}

// TestCachixNixBinDirFirst: cachix runs the nix-store it finds on PATH,
// and only nix.bin_dir's passes the trust rule. With nix.bin_dir at the
// end of PATH, a nix-store earlier in the worker's PATH (any user's
// directory a sudo or a profile put there) ran instead, unchecked, as
// root, with the token in its environment. An empty PATH, whose empty
// entry is the working directory, keeps none.
func TestCachixNixBinDirFirst(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/other/bin:/bin", "NIX:/other/bin:/bin"},
		{"", "NIX"},
	} {
		rec := fake(t, 0)
		nixDir := t.TempDir()
		if err := os.Symlink("/usr/bin/true", filepath.Join(nixDir, "nix-store")); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", tc.path)
		cfg := &config.Config{Cachix: config.Cachix{Bin: exe(t)}, Nix: config.Nix{BinDir: nixDir}}
		if err := New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if r, want := readRecord(t, rec), strings.ReplaceAll(tc.want, "NIX", nixDir); r.Path != want {
			t.Errorf("PATH %q: cachix's PATH = %q, want %q", tc.path, r.Path, want)
		}
	}
}

func TestCachixNotFound(t *testing.T) {
	cfg := &config.Config{Cachix: config.Cachix{Bin: filepath.Join(t.TempDir(), "cachix")}}
	err := New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "cachix.bin ") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Push with a missing cachix = %v", err)
	}
}

func TestPushCancelled(t *testing.T) {
	rec := fake(t, 0)
	// A pusher that never ends on its own: only the cancel ends the
	// push, whatever the machine's speed.
	t.Setenv(envSleep, "1h")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cachixPusherFor(t, "").Push(ctx, paths, &bytes.Buffer{}) }()
	// Cancelled once the pusher runs (its record is written before it
	// sleeps), not before it starts.
	eventually.True(t, eventually.Left(t), "the fake pusher to start", func() bool {
		_, err := os.Stat(rec)
		return err == nil
	})
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled push succeeded")
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("a cancelled push did not return")
	}
}

func TestStorePusher(t *testing.T) {
	rec := fake(t, 0)
	bin := t.TempDir()
	nix := filepath.Join(bin, "nix")
	if err := os.Symlink(exe(t), nix); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envOutput, "copying 2 paths\n")
	cfg := &config.Config{Cachix: config.Cachix{Bin: "/nonexistent/cachix"}, Nix: config.Nix{BinDir: bin}}
	store := "file:///var/cache/nix?compression=zstd"
	p := New(cfg, &config.Target{Name: "local", Store: store})
	if _, ok := p.(*storePusher); !ok {
		t.Fatalf("New for a store target = %T, want *storePusher", p)
	}
	var out bytes.Buffer
	if err := p.Push(context.Background(), paths, &out); err != nil {
		t.Fatalf("Push = %v", err)
	}
	r := readRecord(t, rec)
	want := append([]string{nix, "--extra-experimental-features", "nix-command", "copy", "--to", store, "--"}, paths...)
	if !slices.Equal(r.Args, want) {
		t.Errorf("argv = %q, want %q", r.Args, want)
	}
	if out.String() != "copying 2 paths\n" {
		t.Errorf("output = %q", out.String())
	}

	// A failing nix copy reports its output.
	t.Setenv(envExit, "1")
	t.Setenv(envOutput, "error: cannot open connection to remote store\n")
	err := p.Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "cannot open connection to remote store") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("Push with nix copy failing = %v", err)
	}
}

func TestTailBuffer(t *testing.T) {
	var tb tailBuffer
	tb.Write([]byte(strings.Repeat("a", 5000)))
	tb.Write([]byte("end"))
	if s := tb.String(); len(s) != 4096 || !strings.HasSuffix(s, "aend") {
		t.Errorf("tail = %d bytes ending %q", len(s), s[len(s)-4:])
	}
	if got := lastLines("a\nb\nc\nd", 3); got != "b | c | d" {
		t.Errorf("lastLines = %q", got)
	}
	if got := lastLines("a", 3); got != "a" {
		t.Errorf("lastLines = %q", got)
	}
}

func TestErrorTailCutsToken(t *testing.T) {
	// The error of a failed push carries the last 4 KiB of the output.
	// The token at the very start of that window must not show up in
	// part either.
	fake(t, 2)
	t.Setenv(envOutput, token+strings.Repeat("y", 4096-len(token)/2-1)+"\n")
	err := cachixPusherFor(t, tokenFile(t, 0o600)).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil {
		t.Fatal("Push succeeded")
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("the token is in the error")
	}
	if half := token[len(token)/2:]; strings.Contains(err.Error(), half) {
		t.Errorf("the 4 KiB tail kept for the error message can cut the token in two; redact() then misses "+
			"the half that is left, which ends up in the error (and so in the queue entry's last_error and the log): %q", half)
	}
}

// copyExe copies the test binary (the fake cachix) to dir/name, mode 0755.
func copyExe(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(exe(t))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Root never runs a cachix (or, through nix.bin_dir, a nix-store) that
// another user can change, and so never hands it the token.
func TestCachixUnsafeProgramRefused(t *testing.T) {
	u := testuser.New(t)
	rec := fake(t, 0)
	tok := tokenFile(t, 0o600)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)

	// Owned by the user, found on PATH.
	userBin := filepath.Join(dir, "userbin")
	os.Mkdir(userBin, 0o755)
	owned := copyExe(t, userBin, "cachix")
	u.Chown(t, owned)
	t.Setenv("PATH", userBin+":/usr/bin:/bin")
	cfg := &config.Config{Cachix: config.Cachix{Bin: "cachix", AuthTokenFile: tok}}
	err := New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "refusing "+owned) || !strings.Contains(err.Error(), "owned by "+u.Name) {
		t.Errorf("user-owned cachix on PATH: %v", err)
	}

	// Root's, but in a directory the user owns.
	u.Chown(t, owned)
	os.Chown(owned, 0, 0)
	u.Chown(t, userBin)
	cfg.Cachix.Bin = owned
	err = New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "its directory "+userBin) {
		t.Errorf("cachix in a user's directory: %v", err)
	}

	// A safe cachix, but nix.bin_dir holds the user's nix-store.
	safe := copyExe(t, dir, "cachix")
	nixDir := filepath.Join(dir, "nixbin")
	os.Mkdir(nixDir, 0o755)
	u.Chown(t, copyExe(t, nixDir, "nix-store"))
	cfg = &config.Config{Cachix: config.Cachix{Bin: safe, AuthTokenFile: tok}, Nix: config.Nix{BinDir: nixDir}}
	err = New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "nix.bin_dir") || !strings.Contains(err.Error(), "owned by "+u.Name) {
		t.Errorf("user's nix-store in nix.bin_dir: %v", err)
	}
	// nix copy through that nix.bin_dir is refused as well.
	u.Chown(t, copyExe(t, nixDir, "nix"))
	err = New(cfg, &config.Target{Name: "s", Store: "file:///nowhere"}).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "refusing "+filepath.Join(nixDir, "nix")) {
		t.Errorf("user's nix in nix.bin_dir: %v", err)
	}

	if _, err := os.Stat(rec); err == nil {
		t.Error("an unsafe program ran")
	}
}

// TestCachixSkippedPathFails: cachix push warns about a path it cannot
// find in the store (garbage-collected after the worker looked) and
// skips it, exiting 0 (Cachix.Client.Command.Push: "Warning: PATH is not
// valid, skipping", in yellow). Push returned nil, so the worker
// recorded the path as pushed, and its record kept a rebuild of it from
// being pushed for queue.remember_pushed.
func TestCachixSkippedPathFails(t *testing.T) {
	fake(t, 0)
	t.Setenv(envOutput, "\x1b[33mWarning: "+paths[1]+" is not valid, skipping\x1b[0m\n"+
		"Pushing 1 paths (0 are already present) using zstd to cache mycache ⏳\n\nAll done.\n")
	err := cachixPusherFor(t, "").Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "skipped 1 of the 2 paths") || !strings.Contains(err.Error(), paths[1]) {
		t.Errorf("Push with cachix skipping %s = %v, want an error naming it", paths[1], err)
	}

	// A warning that skips no path given is no failure.
	t.Setenv(envOutput, "warning: ignoring the client-specified setting 'substituters'\nAll done.\n")
	if err := cachixPusherFor(t, "").Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
		t.Errorf("Push = %v", err)
	}

	// Nor is another warning about a path whose name holds "skipping".
	odd := "/nix/store/" + strings.Repeat("s", 32) + "-skipping-rope-1.0"
	t.Setenv(envOutput, "Warning: "+odd+" has no signature\nAll done.\n")
	if err := cachixPusherFor(t, "").Push(context.Background(), []string{odd}, &bytes.Buffer{}); err != nil {
		t.Errorf("Push of %s with a warning that skips nothing = %v", odd, err)
	}
}
