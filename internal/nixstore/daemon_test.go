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
	dir := filepath.Join(proc, fmt.Sprint(pid))
	for _, d := range []string{bin, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "nix-daemon"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(bin, "nix-daemon"), filepath.Join(dir, "exe")); err != nil {
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
	return proc, Nix{BinDir: bin}
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
