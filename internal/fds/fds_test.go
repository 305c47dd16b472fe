package fds

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestChildInheritsNothing opens a descriptor the way an inherited one
// is (without O_CLOEXEC), and checks that a child started after
// CloseOnExec does not have it, while this process still does.
func TestChildInheritsNothing(t *testing.T) {
	childInheritsNothing(t)
}

// The same where the descriptors cannot be listed (no /proc in a chroot
// or container): on Linux close_range needs no listing. Where the
// kernel lacks it (before 5.11, or a seccomp filter refuses it) nothing
// can mark them, and CloseOnExec says so: not a failure of this build
// (nix/package.nix runs this test in checkPhase on the builder's kernel).
func TestChildInheritsNothingWithoutFdDir(t *testing.T) {
	if !closeRangeWorks() {
		t.Skip("no close_range(CLOSE_RANGE_CLOEXEC) here (Linux 5.11 or later)")
	}
	old := fdDir
	fdDir = filepath.Join(t.TempDir(), "no-proc")
	t.Cleanup(func() { fdDir = old })
	childInheritsNothing(t)
}

func childInheritsNothing(t *testing.T) { childInheritsNothingBy(t, CloseOnExec) }

func childInheritsNothingBy(t *testing.T, closeOnExec func() error) {
	file := filepath.Join(t.TempDir(), "f")
	fd, err := syscall.Open(file, syscall.O_CREAT|syscall.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	child := func() string {
		out, err := exec.Command("/bin/sh", "-c", "ls "+fdDirOfShell).Output()
		if err != nil {
			t.Fatal(err)
		}
		return " " + strings.Join(strings.Fields(string(out)), " ") + " "
	}
	name := " " + strconv.Itoa(fd) + " "
	if !strings.Contains(child(), name) {
		t.Fatalf("before CloseOnExec the child lacks fd %d: the test cannot see the defect", fd)
	}
	if err := closeOnExec(); err != nil {
		t.Fatal(err)
	}
	if got := child(); strings.Contains(got, name) {
		t.Errorf("after CloseOnExec the child still has fd %d: %s", fd, got)
	}
	if _, err := syscall.Write(fd, []byte("x")); err != nil {
		t.Errorf("this process lost fd %d: %v", fd, err)
	}
	if fi, _ := os.Stat(file); fi.Size() != 1 {
		t.Errorf("write through fd %d did not land", fd)
	}
}

// TestChildInheritsNothingWithoutCloseRangeOrFdDir is the fallback's
// case: a kernel without close_range and no /proc to list them in. The
// descriptors are then tried one by one, up to a bound.
func TestChildInheritsNothingWithoutCloseRangeOrFdDir(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// Below maxWalk, so that the walk covers every number.
	if lim.Cur > 4096 {
		low := lim
		low.Cur = 4096
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	}
	noDir := filepath.Join(t.TempDir(), "no-proc")
	childInheritsNothingBy(t, func() error { return closeOnExec(func() bool { return false }, noDir) })
}

// The walk says some descriptor may be left only when the limit passes
// its bound: at a limit of exactly maxWalk it marked every number
// (3 to maxWalk-1), and said the contrary.
func TestWalkSaysLeftOnlyPastItsBound(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		left  bool
	}{{maxWalk, false}, {maxWalk + 1, true}, {math.MaxUint64, true}} {
		err := walkBelow(tc.limit, os.ErrNotExist)
		if got := err != nil; got != tc.left {
			t.Errorf("limit %d: walk said %v; want descriptors said left: %v", tc.limit, err, tc.left)
		}
	}
}
