package procgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillAfterReapingSparesTheGroupID checks that a Kill once the
// leader was reaped (exec's Cancel can run then, when the context ends
// as the process exits) sends nothing to the group's id: that number may
// be another process's group by then. End kills the group before it
// reaps, so the reaping is done here as End marks it, without the kill:
// a member left in the group keeps the number taken, so that what the
// kill would reach is ours to see.
func TestKillAfterReapingSparesTheGroupID(t *testing.T) {
	g, member := startWithMember(t)
	if err := g.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.reaped = true
	g.mu.Unlock()
	m := member()
	_ = g.Kill()
	time.Sleep(100 * time.Millisecond) // a SIGKILL sent would have landed
	if st := state(m); st == "" || st == "Z" {
		t.Errorf("Kill after the leader was reaped signalled its group's id (member %d: state %q)", m, st)
	}
}

// TestEndKillsTheGroup checks End still kills what the leader left in
// its group, before reaping it.
func TestEndKillsTheGroup(t *testing.T) {
	g, member := startWithMember(t)
	if err := g.End(); err != nil {
		t.Fatal(err)
	}
	m := member()
	deadline := time.Now().Add(5 * time.Second)
	for st := state(m); st != "" && st != "Z"; st = state(m) {
		if time.Now().After(deadline) {
			t.Fatalf("End left member %d of the group running", m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWithMember starts, in a group of its own, a leader that leaves a
// member in its group and exits; member, once the leader has exited,
// returns the member's pid. The group is SIGKILLed when the test ends.
func startWithMember(t *testing.T) (g *Group, member func() int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// A file, not a pipe: the member keeps it open, and Wait would wait.
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & echo $!")
	cmd.Stdout = f
	g = Set(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	return g, func() int {
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("the member's pid: %q", b)
		}
		return pid
	}
}

// state is the state letter of pid in /proc, "" when it is gone.
func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}
