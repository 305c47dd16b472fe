package nixstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeProc makes a process table at proc/<pid> of root's nix-daemon,
// its executable bin/nix-daemon, started at start (clock ticks after
// boot); environ is left to the caller.
func fakeProc(t *testing.T, pid int, start string) (proc string, nix Nix) {
	t.Helper()
	base := t.TempDir()
	bin := filepath.Join(base, "bin")
	proc = filepath.Join(base, "proc")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "nix-daemon"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	nix = Nix{BinDir: bin}
	addDaemon(t, proc, nix, pid, start)
	return proc, nix
}

// addDaemon adds to the table at proc root's nix-daemon of nix, as pid,
// started at start.
func addDaemon(t *testing.T, proc string, nix Nix, pid int, start string) {
	t.Helper()
	dir := filepath.Join(proc, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(nix.Bin("nix-daemon"), filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"comm":   "nix-daemon\n",
		"status": "Name:\tnix-daemon\nUid:\t0\t0\t0\t0\n",
		"stat":   statLine(pid, start),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// statLine is a /proc/PID/stat line whose starttime (field 22) is start.
func statLine(pid int, start string) string {
	f := make([]string, 50)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[2], f[21] = fmt.Sprint(pid), "(nix-daemon)", "S", start
	return strings.Join(f, " ") + "\n"
}

// A pid names one process only while it runs: the nix-daemon found may
// exit after its uid and executable were checked, and another process
// take its pid before its environment is read. That process's PATH was
// reported as nix-daemon's. Here the environment is a FIFO, so that the
// test swaps the process (its start time) while FindDaemon reads it.
func TestFindDaemonPidReused(t *testing.T) {
	proc, nix := fakeProc(t, 4242, "1000")
	dir := filepath.Join(proc, "4242")
	environ := filepath.Join(dir, "environ")
	if err := syscall.Mkfifo(environ, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Opened once FindDaemon opens it to read.
		f, err := os.OpenFile(environ, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(statLine(4242, "2000")), 0o644); err != nil {
			done <- err
			return
		}
		_, err = f.WriteString("PATH=/another/process\x00")
		done <- err
	}()
	dm := FindDaemon(proc, nix)
	// Lets the writer go if FindDaemon never opened it.
	if r, err := os.OpenFile(environ, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		r.Close()
	}
	if err := <-done; err != nil && !strings.Contains(err.Error(), "broken pipe") {
		t.Fatal(err)
	}
	if dm.Env["PATH"] == "/another/process" {
		t.Errorf("FindDaemon = %+v: the PATH of the process that took the daemon's pid", dm)
	}
}

// The same table with nothing swapped: the daemon and its environment.
func TestFindDaemonFake(t *testing.T) {
	proc, nix := fakeProc(t, 4242, "1000")
	if err := os.WriteFile(filepath.Join(proc, "4242", "environ"), []byte("PATH=/daemon/bin\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	dm := FindDaemon(proc, nix)
	if dm.PID != 4242 || dm.Env["PATH"] != "/daemon/bin" {
		t.Errorf("FindDaemon = %+v, want pid 4242 with PATH=/daemon/bin", dm)
	}
}

// The listening daemon is the oldest of root's nix-daemons (the others
// serve one client each): pids wrap around, so the lowest is not always
// the oldest. FindDaemon took the lowest pid, a client's process started
// after the daemon, whose start time hid from doctor a nix.conf changed
// after the daemon had read it.
func TestFindDaemonOldestNotLowestPid(t *testing.T) {
	proc, nix := fakeProc(t, 30000, "1000")
	addDaemon(t, proc, nix, 300, "9000") // forked for a client after the pids wrapped
	for _, pid := range []string{"30000", "300"} {
		if err := os.WriteFile(filepath.Join(proc, pid, "environ"), []byte("PATH=/daemon/bin\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if dm := FindDaemon(proc, nix); dm.PID != 30000 {
		t.Errorf("FindDaemon found pid %d, want 30000, the oldest", dm.PID)
	}
}

// An environment longer than what is read was taken in part: its last
// variable cut short (here PATH, another directory) and the rest lost.
// It is now not taken, and said why.
func TestFindDaemonEnvironTooLong(t *testing.T) {
	proc, nix := fakeProc(t, 4242, "1000")
	// Cut at the bound, PATH would read /dae.
	filler := "FILLER=" + strings.Repeat("x", maxEnviron-len("FILLER=")-len("\x00PATH=/dae"))
	env := filler + "\x00PATH=/daemon/bin\x00"
	if err := os.WriteFile(filepath.Join(proc, "4242", "environ"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	dm := FindDaemon(proc, nix)
	if dm.PID != 4242 || dm.Env != nil || dm.EnvErr == nil {
		t.Errorf("FindDaemon = pid %d, PATH %q, error %v; want pid 4242, its environment, over %d bytes, not taken in part", dm.PID, dm.Env["PATH"], dm.EnvErr, maxEnviron)
	}
}

// A variable set twice in nix-daemon's environment: Nix hands the hook
// (and so the worker) the first, as getenv finds it; FindDaemon took the
// last.
func TestFindDaemonEnvironDuplicate(t *testing.T) {
	proc, nix := fakeProc(t, 4242, "1000")
	if err := os.WriteFile(filepath.Join(proc, "4242", "environ"), []byte("PATH=/daemon/bin\x00PATH=/other/bin\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dm := FindDaemon(proc, nix); dm.Env["PATH"] != "/daemon/bin" {
		t.Errorf("FindDaemon's PATH = %q, want /daemon/bin, the first, which the hook gets", dm.Env["PATH"])
	}
}
