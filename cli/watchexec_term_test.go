package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termtest"
)

// A Ctrl-C at the terminal reaches watch-exec's command once: the
// terminal sends it to the whole foreground process group, the command
// included, so watch-exec does not pass it on as well (two SIGINTs make
// Nix stop at once, without its cleanup). Here in a real terminal.
func TestWatchExecCtrlCReachesCommandOnce(t *testing.T) {
	termtest.Require(t, "tmux")
	base, prog := userWorld(t)
	for _, d := range []string{"store", "home"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(base, "hook.conf")
	if err := os.WriteFile(conf, []byte("cache = \"main\"\nallow = [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, ready, done := filepath.Join(base, "got"), filepath.Join(base, "ready"), filepath.Join(base, "done")
	// Counts the SIGINTs that come within a second of the first.
	script := "trap 'echo INT >>" + got + "' INT\necho $$ >" + ready + "\nn=0\nwhile [ $n -lt 20 ]; do sleep 0.05; [ -e " + got + " ] && n=$((n+1)); done\ntouch " + done + "\n"
	cmdFile := filepath.Join(base, "cmd.sh")
	if err := os.WriteFile(cmdFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(base, "home"), "TERM=xterm",
		"NIX_STORE_DIR=" + filepath.Join(base, "store"), "CACHIX_FILTER_HOOK_QUEUE_DIR=" + filepath.Join(base, "queue")}
	tm := termtest.Start(t, env, 100, 20, prog, "--config", conf, "watch-exec", "--", "sh", cmdFile)
	exists := func(f string) func() bool {
		return func() bool { _, err := os.Stat(f); return err == nil }
	}
	eventually.True(t, 30*time.Second, "the command to start", exists(ready))
	tm.Send("C-c")
	eventually.True(t, 30*time.Second, "the command to end", exists(done))
	b, _ := os.ReadFile(got)
	if n := strings.Count(string(b), "INT"); n != 1 {
		t.Errorf("the command saw %d SIGINTs for one Ctrl-C, want 1", n)
	}
}

// The same for a watch-exec started in the background of an interactive
// shell and brought to the foreground (`fg`) before the Ctrl-C: whether
// the terminal sent it is known only when it comes.
func TestWatchExecCtrlCAfterFg(t *testing.T) {
	termtest.Require(t, "tmux")
	bash := termtest.Require(t, "bash")
	base, prog := userWorld(t)
	for _, d := range []string{"store", "home"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(base, "hook.conf")
	if err := os.WriteFile(conf, []byte("cache = \"main\"\nallow = [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, ready, done := filepath.Join(base, "got"), filepath.Join(base, "ready"), filepath.Join(base, "done")
	// Counts the SIGINTs that come within a second of the first.
	script := "trap 'echo INT >>" + got + "' INT\necho $$ >" + ready + "\nn=0\nwhile [ $n -lt 20 ]; do sleep 0.05; [ -e " + got + " ] && n=$((n+1)); done\ntouch " + done + "\n"
	cmdFile := filepath.Join(base, "cmd.sh")
	if err := os.WriteFile(cmdFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(base, "home"), "TERM=xterm", "PS1=$ ",
		"NIX_STORE_DIR=" + filepath.Join(base, "store"), "CACHIX_FILTER_HOOK_QUEUE_DIR=" + filepath.Join(base, "queue")}
	tm := termtest.Start(t, env, 200, 20, bash, "--norc", "--noprofile", "-i")
	tm.Await(30*time.Second, "$")
	tm.Send(prog+" --config "+conf+" watch-exec -- sh "+cmdFile+" &", "Enter")
	exists := func(f string) func() bool {
		return func() bool { _, err := os.Stat(f); return err == nil }
	}
	eventually.True(t, 30*time.Second, "the command to start", exists(ready))
	tm.Send("fg", "Enter")
	tm.Await(30*time.Second, "$ fg\n"+prog)
	// fg prints the job before it gives it the terminal: the Ctrl-C
	// goes once the command's group is the terminal's foreground.
	b, _ := os.ReadFile(ready)
	pid := strings.TrimSpace(string(b))
	eventually.True(t, 30*time.Second, "the command to have the terminal", func() bool {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return false
		}
		// After the command's name: state ppid pgrp session tty tpgid.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		return len(f) > 5 && f[2] == f[5]
	})
	tm.Send("C-c")
	eventually.True(t, 30*time.Second, "the command to end", exists(done))
	b, _ = os.ReadFile(got)
	if n := strings.Count(string(b), "INT"); n != 1 {
		t.Errorf("the command saw %d SIGINTs for one Ctrl-C, want 1", n)
	}
}
