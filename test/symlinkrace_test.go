package test

// Issue 18, defect 1: with fs.protected_symlinks = 0, another user's
// symlink in a sticky directory, repointed in a loop between a file root
// trusts and one of the user's, made root load the user's config (13
// times in 150): the trust rule followed the link and checked one file,
// then the file was opened again by name. Here a real unprivileged user
// repoints such a link as fast as perl can while root loads the config,
// reads the token, and runs cachix and nix-store through it, 1,000 times
// each: nothing of the user's is ever loaded or run.

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

const srRounds = 1000

// srRepoint starts, as u, a loop that points link at a, then b, then a
// again, each time atomically (a new link renamed over the old one), and
// stops it when the test ends.
func srRepoint(t *testing.T, u testuser.User, link, a, b string) {
	t.Helper()
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Fatalf("perl (Debian's perl-base, essential) not found: %v", err)
	}
	const loop = `my ($a, $b, $l) = @ARGV; my $t = "$l.tmp";
while (1) { for my $x ($a, $b) { unlink $t; symlink($x, $t); rename($t, $l); } }`
	cmd := exec.Command(perl, "-e", loop, a, b, link)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
	cmd.Dir = "/"
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	eventually.True(t, eventually.Left(t), "the user's loop to make the link", func() bool {
		_, err := os.Lstat(link)
		return err == nil
	}, stderr.String)
}

// srSeen records the link's targets while root works, to show the loop
// really ran under it.
type srSeen map[string]bool

func (s srSeen) sample(link string) {
	if target, err := os.Readlink(link); err == nil {
		s[target] = true
	}
}

// srRun does one round of root's work srRounds times, sampling the link
// before each, and goes on (for a minute at most) until the user's loop
// has been seen pointing it both ways: on a loaded machine the loop may
// not be scheduled during the first rounds (a fast refusal takes 0.1 ms),
// and the test must show a race, not pass or fail by luck. It returns the
// number of rounds.
func srRun(t *testing.T, link, a, b string, round func()) int {
	t.Helper()
	seen := srSeen{}
	n := 0
	for deadline := time.Now().Add(time.Minute); n < srRounds || !(seen[a] && seen[b]) && time.Now().Before(deadline); n++ {
		seen.sample(link)
		round()
	}
	seen.check(t, a, b)
	return n
}

func (s srSeen) check(t *testing.T, a, b string) {
	t.Helper()
	if !s[a] || !s[b] {
		t.Fatalf("the user's loop did not repoint the link while root worked (saw %v)", s)
	}
}

// srWorld is a directory root trusts, with a sticky world-writable
// directory in it (like /tmp), where the user keeps their files and link.
func srWorld(t *testing.T, u testuser.User) (root, sticky, userDir string) {
	t.Helper()
	root = t.TempDir()
	// The user reaches the sticky directory through the test's
	// directories (t.TempDir makes its parent 0700).
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sticky = filepath.Join(root, "tmp")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	userDir = filepath.Join(sticky, "mine")
	if err := os.Mkdir(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, userDir)
	return root, sticky, userDir
}

func srWrite(t *testing.T, path, content string, mode os.FileMode, owner *testuser.User) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		owner.Chown(t, path)
	}
}

func TestSymlinkRaceLoadAndRun(t *testing.T) {
	u := testuser.New(t)
	root, sticky, userDir := srWorld(t, u)

	t.Run("config", func(t *testing.T) {
		good := filepath.Join(root, "hook.conf")
		evil := filepath.Join(userDir, "evil.conf")
		srWrite(t, good, "cache = \"good\"\nallow = [\"hello-*\"]\n", 0o644, nil)
		srWrite(t, evil, "cache = \"evil\"\nallow = [\"*\"]\n", 0o644, &u)
		link := filepath.Join(sticky, "x.conf")
		srRepoint(t, u, link, good, evil)
		wrong, refused := 0, 0
		var why string
		n := srRun(t, link, good, evil, func() {
			c, err := config.Load(link)
			switch {
			case err != nil:
				refused++
				why = err.Error()
			case c.Targets[0].Cache != "good":
				wrong++
			}
		})
		t.Logf("%d loads: %d of the user's config, %d refused (%s)", n, wrong, refused, why)
		if wrong > 0 {
			t.Errorf("root loaded the user's config %d times in %d", wrong, n)
		}
		if refused == n && !strings.Contains(why, "symbolic link owned by "+u.Name) {
			t.Errorf("the refusal does not say why: %s", why)
		}
	})

	t.Run("token", func(t *testing.T) {
		good := filepath.Join(root, "token")
		evil := filepath.Join(userDir, "token")
		srWrite(t, good, "root-token", 0o600, nil)
		srWrite(t, evil, "user-token", 0o600, &u)
		link := filepath.Join(sticky, "token")
		srRepoint(t, u, link, good, evil)
		wrong := 0
		n := srRun(t, link, good, evil, func() {
			if tok, err := config.ReadToken(link); err == nil && tok != "root-token" {
				wrong++
			}
		})
		if wrong > 0 {
			t.Errorf("root read the user's token file %d times in %d", wrong, n)
		}
	})

	// A program that records which one ran.
	marker := filepath.Join(root, "ran")
	program := func(path, who string, owner *testuser.User) {
		srWrite(t, path, "#!/bin/sh\necho "+who+" >> "+marker+"\n", 0o755, owner)
	}
	ran := func(t *testing.T) (good, evil int) {
		t.Helper()
		data, _ := os.ReadFile(marker)
		os.Remove(marker)
		return strings.Count(string(data), "good\n"), strings.Count(string(data), "evil\n")
	}

	t.Run("cachix", func(t *testing.T) {
		good := filepath.Join(root, "cachix")
		evil := filepath.Join(userDir, "cachix")
		program(good, "good", nil)
		program(evil, "evil", &u)
		link := filepath.Join(sticky, "cachix")
		srRepoint(t, u, link, good, evil)
		cfg := &config.Config{Cachix: config.Cachix{Bin: link}, Queue: config.Queue{PushTimeout: time.Minute}}
		p := pusher.New(cfg, &config.Target{Name: "c", Cache: "c"})
		n := srRun(t, link, good, evil, func() {
			p.Push(context.Background(), []string{"/nix/store/00000000000000000000000000000000-x"}, io.Discard)
		})
		g, e := ran(t)
		t.Logf("%d pushes: the user's cachix ran %d times, root's %d", n, e, g)
		if e > 0 {
			t.Errorf("root ran the user's cachix %d times in %d", e, n)
		}
	})

	t.Run("nix-store", func(t *testing.T) {
		goodDir := filepath.Join(root, "nixbin")
		os.Mkdir(goodDir, 0o755)
		program(filepath.Join(goodDir, "nix-store"), "good", nil)
		evilDir := filepath.Join(userDir, "nixbin")
		os.Mkdir(evilDir, 0o755)
		u.Chown(t, evilDir)
		program(filepath.Join(evilDir, "nix-store"), "evil", &u)
		link := filepath.Join(sticky, "nixbin")
		srRepoint(t, u, link, goodDir, evilDir)
		nix := nixstore.Nix{BinDir: link}
		n := srRun(t, link, goodDir, evilDir, func() {
			nix.Closure(context.Background(), "/nix/store/00000000000000000000000000000000-x")
		})
		g, e := ran(t)
		t.Logf("%d queries: the user's nix-store ran %d times, root's %d", n, e, g)
		if e > 0 {
			t.Errorf("root ran the user's nix-store %d times in %d", e, n)
		}
	})
}
