package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// doctorWorld is a world-readable directory with the test binary as
// cachix-filter-hook and a config of a Cachix target (so that doctor
// looks cachix up in nix-daemon's PATH) whose queue is queueDir.
func doctorWorld(t *testing.T, queueDir func(base string) string) (base, prog, conf string) {
	t.Helper()
	base, err := os.MkdirTemp("", "cfh-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	chmod(t, base, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog = filepath.Join(base, "cachix-filter-hook")
	copyFile(t, self, prog, 0o755)
	conf = filepath.Join(base, "hook.conf")
	body := fmt.Sprintf("cache = \"c\"\nallow = [\"*\"]\n[queue]\ndir = %q\n", queueDir(base))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, prog, conf
}

// ownDaemon waits until pid is the nix-daemon doctor finds (the oldest
// of root's running the Nix in use): other packages' tests, run at the
// same time, start nix-daemons of their own for a few seconds
// (test/watchexec_test.go), and an older one would be taken for it.
func ownDaemon(t *testing.T, pid int) {
	t.Helper()
	eventually.True(t, eventually.Left(t), fmt.Sprintf("pid %d to be the nix-daemon doctor finds", pid), func() bool {
		return nixstore.FindDaemon("/proc", nixstore.Nix{}).PID == pid
	})
}

// nixDaemonOrSkip is the nix-daemon on PATH; without one the test is
// skipped, or fails under CFH_TEST_REQUIRE_NIX=1.
func nixDaemonOrSkip(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nix-daemon")
	if err != nil {
		if os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
			t.Fatal("nix-daemon not found and CFH_TEST_REQUIRE_NIX=1")
		}
		t.Skip("needs Nix's nix-daemon")
	}
	return p
}

// stdioDaemon starts `nix-daemon --stdio` in / with env, killed when the
// test ends, and waits until it is the nix-daemon doctor finds. --stdio
// serves one client on its standard input: it waits there, with no
// socket.
func stdioDaemon(t *testing.T, nixDaemon string, env ...string) *exec.Cmd {
	t.Helper()
	d := exec.Command(nixDaemon, "--stdio")
	d.Env = env
	d.Dir = "/"
	if _, err := d.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	ownDaemon(t, d.Process.Pid)
	return d
}

func doctorOutput(t *testing.T, prog, conf string) string {
	t.Helper()
	cmd := exec.Command(prog, "--config", conf, "doctor")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(conf)}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var ee *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &ee) {
		t.Fatalf("running doctor: %v", err)
	}
	return out.String()
}

// Issue 18, defect 12: doctor believed any process named nix-daemon, and
// reported its PATH as the daemon's. Here four run: a real nix-daemon
// that has exited (a zombie: its name stays, its executable and
// environment are gone), another user's program named nix-daemon, root's
// program named nix-daemon that is not Nix, and the real nix-daemon of
// the Nix in use (`nix-daemon --stdio`, which listens on no socket). Only
// the last counts, though each of the others is older; each PATH leads
// to a cachix of its own.
func TestDoctorDaemonIsTheNixInUse(t *testing.T) {
	u := testuser.New(t)
	nixDaemon := nixDaemonOrSkip(t)
	base, prog, conf := doctorWorld(t, func(base string) string { return filepath.Join(base, "queue") })
	pathOf := func(who string) string {
		dir := filepath.Join(base, who)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cachix"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	fake := func(who string) string {
		dir := filepath.Join(base, who+"-bin")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "nix-daemon")
		copyFile(t, "/bin/sleep", p, 0o755)
		return p
	}
	var procs []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
	})
	start := func(path, dir string, uid int, args ...string) *exec.Cmd {
		c := exec.Command(path, args...)
		c.Env = []string{"PATH=" + dir}
		c.Dir = "/"
		if path == nixDaemon {
			// --stdio serves one client on its standard input: it
			// waits there, with no socket.
			if _, err := c.StdinPipe(); err != nil {
				t.Fatal(err)
			}
		}
		if uid != 0 {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(u.Gid)}}
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
		return c
	}
	zombie := start(nixDaemon, pathOf("zombie"), 0, "--stdio")
	zombie.Process.Kill() // not waited for until the test ends: a zombie
	start(fake("user"), pathOf("user"), u.Uid, "600")
	start(fake("root"), pathOf("rootfake"), 0, "600")
	real := start(nixDaemon, pathOf("real"), 0, "--stdio")
	ownDaemon(t, real.Process.Pid)

	out := doctorOutput(t, prog, conf)
	want := fmt.Sprintf(`(?m)^ok +cachix: %s/real/cachix, found in nix-daemon's PATH \(pid %d\)$`, regexp.QuoteMeta(base), real.Process.Pid)
	if !regexp.MustCompile(want).MatchString(out) {
		t.Errorf("doctor does not take pid %d's PATH for nix-daemon's:\n%s", real.Process.Pid, out)
	}
	for _, who := range []string{"zombie", "user", "rootfake"} {
		if strings.Contains(out, base+"/"+who) {
			t.Errorf("doctor reports the PATH of the %s nix-daemon:\n%s", who, out)
		}
	}
	if strings.Contains(out, "run doctor as root") {
		t.Errorf("doctor, as root, says to run it as root:\n%s", out)
	}
}

// Issue 18, defect 12: on a read-only file system, doctor says so, and
// no chmod fixes it: whether the queue directory exists there or is yet
// to be made by the first hook.
func TestDoctorReadOnlyQueue(t *testing.T) {
	testuser.New(t) // root, or skip
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		// .ci/run sets CI=true and CFH_TEST_REQUIRE_NIX=1, never
		// CFH_TEST_REQUIRE_ROOT: under CI a skip here is a failure.
		if os.Getenv("CFH_TEST_REQUIRE_ROOT") == "1" || os.Getenv("CI") == "true" || os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
			t.Fatalf("mount, and CI requires this test: %v\n%s", err, out)
		}
		t.Skipf("cannot mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	queue := filepath.Join(mnt, "queue")
	for _, sub := range []string{"", "entries", "tmp"} {
		if err := os.Mkdir(filepath.Join(queue, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v\n%s", err, out)
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"exists", queue, `(?m)^problem +queue: ` + regexp.QuoteMeta(queue) + ` is on a read-only file system: the hook queues nothing; fix: set queue.dir in hook.conf to a directory on a writable file system .*remount`},
		{"to be made", filepath.Join(mnt, "new"), `(?m)^problem +queue: ` + regexp.QuoteMeta(filepath.Join(mnt, "new")) + ` does not exist, and the file system holding ` + regexp.QuoteMeta(mnt) + ` is read-only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, prog, conf := doctorWorld(t, func(string) string { return tc.dir })
			out := doctorOutput(t, prog, conf)
			if !regexp.MustCompile(tc.want).MatchString(out) {
				t.Errorf("doctor: no line matching %s in:\n%s", tc.want, out)
			}
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "queue:") && strings.Contains(l, "chmod") {
					t.Errorf("doctor suggests chmod for a read-only file system: %s", l)
				}
			}
		})
	}
}

// A nix-daemon reads nix.conf once, at its start: a post-build-hook
// added to nix.conf since runs for no build until the daemon restarts.
// doctor read the hook from nix.conf (as `nix show-config` does) and
// reported it ok, with nothing about the daemon that never runs it.
func TestDoctorDaemonOlderThanNixConf(t *testing.T) {
	nixDaemon := nixDaemonOrSkip(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: nix-daemon's environment is root's to read")
	}
	base, prog, conf := doctorWorld(t, func(base string) string { return filepath.Join(base, "queue") })
	confDir := filepath.Join(base, "nixconf")
	if err := os.Mkdir(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	nixConf := filepath.Join(confDir, "nix.conf")
	if err := os.WriteFile(nixConf, []byte("post-build-hook = "+prog+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Read long before the daemon started.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(nixConf, old, old); err != nil {
		t.Fatal(err)
	}
	d := stdioDaemon(t, nixDaemon, "PATH="+os.Getenv("PATH"), "NIX_CONF_DIR="+confDir)

	run := func() string {
		cmd := exec.Command(prog, "--config", conf, "doctor")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "NIX_CONF_DIR=" + confDir}
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	stale := regexp.MustCompile(`(?m)^warning +post-build-hook: .*nix\.conf changed after nix-daemon \(pid ` + fmt.Sprint(d.Process.Pid) + `\) started.*; fix: .*restart nix-daemon`)
	if out := run(); !regexp.MustCompile(`(?m)^ok +post-build-hook: .*\(this program\)$`).MatchString(out) || stale.MatchString(out) {
		t.Fatalf("nix.conf older than the daemon: want the hook ok and no warning:\n%s", out)
	}
	// The hook was added to nix.conf after the daemon started.
	now := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(nixConf, now, now); err != nil {
		t.Fatal(err)
	}
	if out := run(); !stale.MatchString(out) {
		t.Errorf("nix.conf changed after nix-daemon started: no warning to restart it:\n%s", out)
	}
}

// doctor's token advice looked at its own environment: a CACHIX_AUTH_TOKEN
// or cachix.dhall of the user running doctor, which the hook's worker,
// started with nix-daemon's environment, never sees; and not at the
// cachix.dhall in nix-daemon's HOME, which it does. It now says what the
// worker will find, in nix-daemon's environment.
func TestDoctorTokenAdviceIsTheWorkers(t *testing.T) {
	testuser.New(t) // root, or skip: only root reads the daemon's environment
	nixDaemon := nixDaemonOrSkip(t)
	base, prog, conf := doctorWorld(t, func(base string) string { return filepath.Join(base, "queue") })
	daemonHome := filepath.Join(base, "daemon-home")
	dhall := filepath.Join(daemonHome, ".config", "cachix", "cachix.dhall")
	if err := os.MkdirAll(filepath.Dir(dhall), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dhall, []byte("{ authToken = \"x\", hostname = \"https://cachix.org\", binaryCaches = [] : List { name : Text, secretKey : Text } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdioDaemon(t, nixDaemon, "PATH="+os.Getenv("PATH"), "HOME="+daemonHome)
	// doctor's own HOME (base) has no cachix.dhall; the daemon's has.
	out := doctorOutput(t, prog, conf)
	if !regexp.MustCompile(`(?m)^warning +token: .*`+regexp.QuoteMeta(dhall)).MatchString(out) || strings.Contains(out, filepath.Join(base, ".config")) {
		t.Errorf("doctor, with no cachix.dhall in its HOME and one in nix-daemon's:\n%s\nwant the warning name %s, the worker's", out, dhall)
	}
	// A token in doctor's environment is not the worker's.
	if err := os.Remove(dhall); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, "--config", conf, "doctor")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "CACHIX_AUTH_TOKEN=mine"}
	got, _ := cmd.CombinedOutput()
	if !regexp.MustCompile(`(?m)^problem +token: `).Match(got) {
		t.Errorf("doctor, with CACHIX_AUTH_TOKEN in its environment, none in nix-daemon's, and no cachix.dhall there:\n%s\nwant a problem: the worker has no token", got)
	}
}
