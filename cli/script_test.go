package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// TestMain lets the test binary act as cachix-filter-hook when a script
// runs it, so the scripts test the very code main.go calls.
func TestMain(m *testing.M) {
	if db := os.Getenv(envFakeNix); db != "" && filepath.Base(os.Args[0]) == "nix" {
		os.Exit(fakeNixMain(db, os.Args[1:]))
	}
	testscript.Main(m, map[string]func(){
		"cachix-filter-hook": func() { os.Exit(Main("test", os.Args[1:])) },
	})
}

// TestScripts runs the CLI scripts in testdata/script. Each script runs in
// its own $WORK with HOME and the XDG directories inside it, so that no
// user config is read; scripts also always name their config (--config or
// $CACHIX_FILTER_HOOK_CONFIG), since /etc/cachix-filter-hook/hook.conf is
// looked up too (first as root): a script that relied on the search path
// would test this machine, not the program.
//
// Custom commands and conditions:
//
//	status N PROGRAM [ARGS...]  run PROGRAM and require exit status N
//	holdworker DIR              hold DIR's worker lock to the script's end,
//	                            as a running worker does: what queues
//	                            there starts no worker, which would outlive
//	                            the script
//	[root]                      the tests run as root (euid 0)
//
// $CFH_SELF is the test binary, which scripts run as cachix-filter-hook.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("HOME", e.WorkDir)
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(e.WorkDir, ".config"))
			e.Setenv("XDG_STATE_HOME", filepath.Join(e.WorkDir, ".local", "state"))
			// The program under test, for scripts that name it in a
			// nix.conf (doctor).
			if self, err := os.Executable(); err == nil {
				e.Setenv("CFH_SELF", self)
			}
			// As root the config must be writable by nobody else; make
			// the unpacked files so whatever the umask, and let the
			// scripts that test the refusal loosen them with chmod.
			return filepath.WalkDir(e.WorkDir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				info, err := d.Info()
				if err != nil || d.Type()&fs.ModeSymlink != 0 {
					return err
				}
				return os.Chmod(path, info.Mode().Perm()&^0o022)
			})
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":     cmdStatus,
			"holdworker": cmdHoldWorker,
		},
	})
}

// cmdStatus runs a program, like exec, and checks its exact exit status.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: bad exit status %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdHoldWorker takes the worker lock of the queue in args[0] until the
// script ends.
func cmdHoldWorker(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdworker DIR")
	}
	q, err := queue.Open(ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("holdworker: %v", err)
	}
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		ts.Fatalf("holdworker: the worker lock of %s is taken (%v)", args[0], err)
	}
	ts.Defer(func() { lock.Unlock() })
}
