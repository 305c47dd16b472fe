package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// TestDoctorQueueAsUser runs doctor as a real unprivileged user, for what
// root cannot see: a queue directory of its own it cannot write into, and
// root's queue (the usual setup: the hook runs as root under nix-daemon)
// looked at without sudo. The testscript work directories are root's and
// private, so this builds its own world-readable tree.
func TestDoctorQueueAsUser(t *testing.T) {
	u := testuser.New(t)
	base, prog := userWorld(t)
	conf := filepath.Join(base, "hook.conf")
	if err := os.WriteFile(conf, []byte("store = \"file:///nonexistent\"\nallow = [\"*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	mine := filepath.Join(base, "mine")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, mine)
	rootQueue := filepath.Join(base, "rootq")
	if err := os.Mkdir(rootQueue, 0o700); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, dir, mode string
		want            string
	}{
		{"not writable", mine, "0500", `(?m)^problem +queue: .*/mine is not writable by ` + u.Name + `: permission denied; fix: chmod 700 .*/mine$`},
		{"root's queue", rootQueue, "", `(?m)^problem +queue: the hook refuses it and queues nothing: refusing queue directory .*/rootq: it is owned by root \(uid 0\), not ` + u.Name + ` .*; fix: if the hook runs as root \(it does under nix-daemon\), run doctor as root: sudo cachix-filter-hook doctor; else set queue.dir in hook.conf to a directory of your own$`},
		{"its own, private", mine, "0700", `(?m)^ok +queue: .*/mine: 0 pending$`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.mode == "0500" {
				chmod(t, c.dir, 0o500)
			} else if c.mode == "0700" {
				chmod(t, c.dir, 0o700)
			}
			cmd := exec.Command(prog, "--config", conf, "doctor")
			cmd.Env = []string{
				"PATH=" + os.Getenv("PATH"),
				"HOME=" + base,
				"CACHIX_FILTER_HOOK_QUEUE_DIR=" + c.dir,
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("running doctor as %s: %v", u.Name, err)
			}
			if !regexp.MustCompile(c.want).Match(out.Bytes()) {
				t.Fatalf("doctor as %s, queue %s: no line matching %s in:\n%s", u.Name, c.dir, c.want, out.String())
			}
			// A queue problem is a problem: exit 1 (other checks may fail
			// too here, without Nix's hook set; the healthy case only
			// needs the queue line).
			if c.mode != "0700" && (ee == nil || ee.ExitCode() != 1) {
				t.Fatalf("doctor exited %v, want 1", err)
			}
		})
	}
}

// As a user with a hook.conf of their own (found by the search, no
// --config), doctor checks that one and the user's queue: it says so, and
// that the hook under nix-daemon uses the machine's file and root's queue.
func TestDoctorSaysItCheckedTheUsersConfig(t *testing.T) {
	u := testuser.New(t)
	base, prog := userWorld(t)
	home := filepath.Join(base, "home")
	confDir := filepath.Join(home, ".config", "cachix-filter-hook")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(confDir, "hook.conf")
	if err := os.WriteFile(conf, []byte("store = \"file:///nonexistent\"\nallow = [\"*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{home, filepath.Join(home, ".config"), confDir, conf} {
		u.Chown(t, d)
	}
	run := func(args ...string) string {
		cmd := exec.Command(prog, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running doctor as %s: %v", u.Name, err)
		}
		return string(out)
	}
	want := regexp.MustCompile(`(?m)^warning +config: ` + regexp.QuoteMeta(conf) + ` is yours, for your push and watch-exec: with multi-user Nix the hook runs as root under nix-daemon, with .*/hook.conf and root's queue, which doctor did not check; fix: run ` + "`sudo cachix-filter-hook doctor`")
	if out := run("doctor"); !want.MatchString(out) {
		t.Errorf("doctor as %s with a hook.conf of its own does not say it checked that one:\n%s", u.Name, out)
	}
	// Named with --config, the file is the one meant.
	if out := run("--config", conf, "doctor"); strings.Contains(out, "is yours") {
		t.Errorf("doctor --config warns of the user's file:\n%s", out)
	}
}

// userWorld makes a world-readable directory (the testscript work
// directories are root's and private) holding the program, the test
// binary, which runs as cachix-filter-hook when named so (TestMain).
func userWorld(t *testing.T) (base, prog string) {
	t.Helper()
	base, err := os.MkdirTemp("", "cfh-doctor-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog = filepath.Join(base, "cachix-filter-hook")
	copyFile(t, self, prog, 0o755)
	return base, prog
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDoctorRootsSecretsAsUser: doctor (and validate) run without sudo on
// root's hook.conf cannot read root's token and signing key (mode 0600,
// as they must be). That says nothing against them: the fix is to check
// as root, not to write a new token over the one the worker uses.
func TestDoctorRootsSecretsAsUser(t *testing.T) {
	u := testuser.New(t)
	// doctorWorld's directory and program; the config is written below.
	base, prog, conf := doctorWorld(t, func(base string) string { return filepath.Join(base, "q") })
	token := filepath.Join(base, "token")
	if err := os.WriteFile(token, []byte("secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(base, "key.sec")
	if err := os.WriteFile(key, []byte("c-1:"+strings.Repeat("A", 86)+"==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("cache = \"c\"\nallow = [\"*\"]\n[[target]]\nstore = \"file:///nonexistent\"\nallow = [\"*\"]\nsecret_key_file = %q\n[cachix]\nbin = %q\nauth_token_file = %q\n[queue]\ndir = %q\n", key, prog, token, filepath.Join(base, "q"))
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmdName := range []string{"doctor", "validate"} {
		cmd := exec.Command(prog, "--config", conf, cmdName)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
		out, _ := cmd.CombinedOutput()
		for _, what := range []string{"token", "signing key"} {
			line := ""
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "permission denied") && strings.Contains(l, what) {
					line = l
				}
			}
			if line == "" {
				t.Errorf("%s as %s: no line about the unreadable %s in:\n%s", cmdName, u.Name, what, out)
				continue
			}
			if !strings.Contains(line, "sudo cachix-filter-hook "+cmdName) || strings.Contains(line, "generate-binary-cache-key") || strings.Contains(line, "install -D") {
				t.Errorf("%s as %s: the %s line does not say to check as root (or says to write a new one):\n%s", cmdName, u.Name, what, line)
			}
		}
	}
}

// log, forget and retry, run by a user without sudo against root's queue
// (the config in /etc names it), were told the queue may have been
// planted and to remove it (rm -rf): the hook's queue, with its entries.
func TestQueueCommandsRootsQueueAsUser(t *testing.T) {
	u := testuser.New(t)
	base, prog := userWorld(t)
	conf := filepath.Join(base, "hook.conf")
	if err := os.WriteFile(conf, []byte("store = \"file:///nonexistent\"\nallow = [\"*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootQueue := filepath.Join(base, "rootq")
	if err := os.Mkdir(rootQueue, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, cmdName := range []string{"log", "forget", "retry"} {
		cmd := exec.Command(prog, "--config", conf, cmdName)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "CACHIX_FILTER_HOOK_QUEUE_DIR=" + rootQueue}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
		out, _ := cmd.CombinedOutput()
		if strings.Contains(string(out), "rm -rf") || !strings.Contains(string(out), "run this command as root (sudo)") {
			t.Errorf("%s as %s against root's queue: want it told to run as root, not to remove the queue; got:\n%s", cmdName, u.Name, out)
		}
	}
	if _, err := os.Stat(rootQueue); err != nil {
		t.Fatal(err)
	}
}
