package nixstore

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// A session answers as one-shot PathInfos does, with one process for
// many calls, and sees a path built after it was asked about (Nix's own
// cache of path infos would say "not valid" for an hour).
func TestSessionRealNix(t *testing.T) {
	nixtest.Require(t)
	salt := nixtest.Salt()
	expr := fmt.Sprintf(`let dep = derivation { name = "ss-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; };
in derivation { name = "ss-app"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out" ]; }`, salt)
	_, outs := nixtest.Build(t, expr)
	later := nixtest.WriteExpr(t, t.TempDir(), fmt.Sprintf(`derivation { name = "ss-later"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %s > $out" ]; }`, salt))
	laterOut := nixtest.Outputs(t, nixtest.Derivations(t, later)...)[0]

	// The test asks whether one process sees a path built after it was
	// asked about, so it must keep its process from the first call to the
	// last: with the session's own bounds, a nix-build slower than
	// sessionIdle (5 s, as on a loaded machine whose other tests hold the
	// store's locks) ended it, and the last call's new process failed the
	// test. Lifted for this session only.
	s := Nix{}.NewSession()
	s.idleAfter, s.maxAge = time.Hour, time.Hour
	defer s.Shut()
	var pid int
	for _, recursive := range []bool{false, true, false} {
		got, err := s.PathInfos(context.Background(), recursive, outs[0], laterOut)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Nix{}.PathInfos(context.Background(), recursive, outs[0], laterOut)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
			t.Fatalf("recursive %v: session %v, one-shot %v", recursive, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		for p, w := range want {
			if g := got[p]; g.Valid != w.Valid || g.NarSize != w.NarSize || g.Deriver != w.Deriver || !slices.Equal(g.References, w.References) {
				t.Errorf("recursive %v, %s: session %+v, one-shot %+v", recursive, p, g, w)
			}
		}
		if got[laterOut].Valid {
			t.Fatalf("%s is valid before it was built", laterOut)
		}
		if s.proc == nil || pid != 0 && s.proc.cmd.Process.Pid != pid {
			t.Fatalf("the session's process is not the one of the first call")
		}
		pid = s.proc.cmd.Process.Pid
	}
	args := nixtest.BuildArgs(later, "")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("nix-build: %v\n%s", err, out)
	}
	got, err := s.PathInfos(context.Background(), false, laterOut)
	if err != nil {
		t.Fatal(err)
	}
	if !got[laterOut].Valid || s.proc.cmd.Process.Pid != pid {
		t.Errorf("after the build the same session says %s is %+v", laterOut, got[laterOut])
	}
}

// A nix-store that opens the session and then answers nothing is killed
// when the caller gives up, and the next call starts another.
func TestSessionHangIsBounded(t *testing.T) {
	dir := t.TempDir()
	hello := hello()
	if err := os.WriteFile(filepath.Join(dir, "hello"), hello.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The handshake, then silence: say when the question has come (the
	// magic, the version and its first word), and read stdin until
	// killed, with stdout held open (by sh: an exec of cat >/dev/null
	// closed it, and the call ended at once on EOF, killed or not).
	asked := filepath.Join(dir, "asked")
	script := "#!/bin/sh\ncat " + filepath.Join(dir, "hello") + "\nhead -c 24 >/dev/null\n: >" + asked + "\ncat >/dev/null\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Nix{BinDir: dir}.NewSession()
	defer s.Shut()
	for i := range 2 {
		os.Remove(asked)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel() // before Shut, which waits for the call
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := s.PathInfos(ctx, false, "/nix/store/00000000000000000000000000000000-hang")
			done <- err
		}()
		// Given up once the question has reached nix-store, so that it
		// is the question's wait that is ended, not the handshake's.
		eventually.True(t, eventually.Left(t), fmt.Sprintf("call %d's question to reach the fake nix-store", i), func() bool {
			_, err := os.Stat(asked)
			return err == nil
		})
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(eventually.Left(t)):
			t.Fatalf("call %d did not return after its caller gave up", i)
		}
		if err == nil {
			t.Fatalf("call %d: no error from a nix-store that answers nothing", i)
		}
		// The path-info timeout is the call's only other end, and it
		// cannot come sooner: a call back before it was ended by its
		// caller, however slow the machine.
		if d := time.Since(start); d >= pathInfoTimeout {
			t.Errorf("call %d took %v: ended by the path-info timeout, not by its caller", i, d)
		}
		if s.proc != nil {
			t.Errorf("call %d: the session kept the process that failed", i)
		}
	}
}

// killPidFile kills, when the test ends, the processes whose pids a fake
// wrote to f, one a line.
func killPidFile(t *testing.T, f string) {
	t.Cleanup(func() {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(s); pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// TestSessionHangWithChildHoldingStdout guards the kill of a session's
// process when its caller gives up: nix-store --serve opens the session,
// then hangs with a child of its own (as sh running a command, or a Nix
// that forked a helper) holding its stdout. Killing nix-store alone left
// the read of stdout waiting for the child, for good, with the session's
// lock held (the worker wedged). The kill must end the whole process
// group, or at least let WaitDelay close the pipes.
func TestSessionHangWithChildHoldingStdout(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), hello().Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(dir, "pids")
	killPidFile(t, pids)
	script := "#!/bin/sh\ncat " + filepath.Join(dir, "hello") + "\nsleep 3600 &\necho $! >> " + pids + "\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Nix{BinDir: dir}.NewSession()
	endsWithContext(t, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := s.PathInfos(ctx, false, "/nix/store/00000000000000000000000000000000-hang")
		return err
	})
	s.Shut() // not deferred: after a hang it would wait for the lock
}

// A nix-store that never answers the handshake (a daemon that does not
// answer it) is killed when the caller gives up, not after the path-info
// timeout of minutes, with the session's lock held all the while.
func TestSessionHandshakeHangEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Nix{BinDir: dir}.NewSession()
	endsWithContext(t, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := s.PathInfos(ctx, false, "/nix/store/00000000000000000000000000000000-hang")
		return err
	})
	s.Shut()
}

// A caller waits for the session no longer than its context: the
// worker's round asks, within a second, whether builds are done while a
// batch's question may hold the session for minutes (a Nix that hangs,
// up to the path-info timeout). The round was held that long, and the
// worker's main loop with it.
func TestSessionWaitForTheLockEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), hello().Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	asked := filepath.Join(dir, "asked")
	// The handshake, then silence until killed, saying it got there.
	script := "#!/bin/sh\ncat " + filepath.Join(dir, "hello") + "\n: >" + asked + "\nexec sleep 3600\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Nix{BinDir: dir}.NewSession()
	holder, stop := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		_, err := s.PathInfos(holder, false, "/nix/store/00000000000000000000000000000000-hang")
		held <- err
	}()
	defer func() {
		stop()
		<-held
		s.Shut()
	}()
	eventually.True(t, eventually.Left(t), "the first question to reach the fake nix-store", func() bool {
		_, err := os.Stat(asked)
		return err == nil
	})
	select {
	case err := <-held:
		t.Fatalf("the first question ended before the second was asked: %v", err)
	default:
	}
	endsWithContext(t, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := s.PathInfos(ctx, false, "/nix/store/00000000000000000000000000000000-other")
		return err
	})
}
