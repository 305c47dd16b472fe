package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termtest"
)

// sigintWorld is a watch-exec run whose command counts the SIGINTs that
// reach it within a second of the first.
type sigintWorld struct {
	prog, conf, cmdFile string
	got, ready, done    string
	env                 []string
}

func newSigintWorld(t *testing.T) *sigintWorld {
	base, prog := userWorld(t)
	for _, d := range []string{"store", "home"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := &sigintWorld{prog: prog, conf: filepath.Join(base, "hook.conf"), cmdFile: filepath.Join(base, "cmd.sh"),
		got: filepath.Join(base, "got"), ready: filepath.Join(base, "ready"), done: filepath.Join(base, "done")}
	if err := os.WriteFile(w.conf, []byte("cache = \"main\"\nallow = [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "trap 'echo INT >>" + w.got + "' INT\necho $$ >" + w.ready + "\nn=0\nwhile [ $n -lt 20 ]; do sleep 0.05; [ -e " + w.got + " ] && n=$((n+1)); done\ntouch " + w.done + "\n"
	if err := os.WriteFile(w.cmdFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	w.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(base, "home"), "TERM=xterm",
		"NIX_STORE_DIR=" + filepath.Join(base, "store"), "CACHIX_FILTER_HOOK_QUEUE_DIR=" + filepath.Join(base, "queue")}
	return w
}

func fileExists(f string) func() bool {
	return func() bool { _, err := os.Stat(f); return err == nil }
}

// lineIn is whether f holds a whole line: the shell's `echo >f` makes
// the file before it writes to it.
func lineIn(f string) func() bool {
	return func() bool { b, err := os.ReadFile(f); return err == nil && bytes.HasSuffix(b, []byte("\n")) }
}

// ctrlC types a Ctrl-C and checks that the command saw it once.
func (w *sigintWorld) ctrlC(t *testing.T, tm *termtest.Tmux) {
	tm.Send("C-c")
	eventually.True(t, eventually.Left(t), "the command to end", fileExists(w.done))
	b, _ := os.ReadFile(w.got)
	if n := strings.Count(string(b), "INT"); n != 1 {
		t.Errorf("the command saw %d SIGINTs for one Ctrl-C, want 1", n)
	}
}

// A Ctrl-C at the terminal reaches watch-exec's command once: the
// terminal sends it to the whole foreground process group, the command
// included, so watch-exec does not pass it on as well (two SIGINTs make
// Nix stop at once, without its cleanup). Here in a real terminal.
func TestWatchExecCtrlCReachesCommandOnce(t *testing.T) {
	termtest.Require(t, "tmux")
	w := newSigintWorld(t)
	tm := termtest.Start(t, w.env, 100, 20, w.prog, "--config", w.conf, "watch-exec", "--", "sh", w.cmdFile)
	eventually.True(t, eventually.Left(t), "the command to start", lineIn(w.ready))
	w.ctrlC(t, tm)
}

// The same for a watch-exec started in the background of an interactive
// shell and brought to the foreground (`fg`) before the Ctrl-C: whether
// the terminal sent it is known only when it comes.
func TestWatchExecCtrlCAfterFg(t *testing.T) {
	termtest.Require(t, "tmux")
	bash := termtest.Require(t, "bash")
	w := newSigintWorld(t)
	tm := termtest.Start(t, append(w.env, "PS1=$ "), 200, 20, bash, "--norc", "--noprofile", "-i")
	tm.Await("$")
	tm.Send(w.prog+" --config "+w.conf+" watch-exec -- sh "+w.cmdFile+" &", "Enter")
	eventually.True(t, eventually.Left(t), "the command to start", lineIn(w.ready))
	tm.Send("fg", "Enter")
	tm.Await("$ fg\n" + w.prog)
	// fg prints the job before it gives it the terminal: the Ctrl-C
	// goes once the command's group is the terminal's foreground.
	b, _ := os.ReadFile(w.ready)
	pid := strings.TrimSpace(string(b))
	eventually.True(t, eventually.Left(t), "the command to have the terminal", func() bool {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return false
		}
		// After the command's name: state ppid pgrp session tty tpgid.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		return len(f) > 5 && f[2] == f[5]
	})
	w.ctrlC(t, tm)
}
