package nixstore

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// TestHelperLeftInTheGroupIsKilled: a Nix command that exits leaving a
// helper in its group, its output closed (so no read waits for it), had
// that helper run on as root with no time limit: the command was waited
// for without the group kill End makes once the leader has exited.
func TestHelperLeftInTheGroupIsKilled(t *testing.T) {
	const gone = "/nix/store/00000000000000000000000000000000-gone"
	// helper starts a sleep in the group with its output closed, and
	// writes its pid to $d/pids.
	const helper = "sleep 3600 </dev/null >/dev/null 2>&1 &\necho $! >> $d/pids\n"
	for _, tc := range []struct {
		name, leaves, nixStore, nix string
		call                        func(context.Context, Nix) error
	}{
		{"query", "nix-store", "echo " + gone + ".out\n", "", func(ctx context.Context, n Nix) error {
			_, err := n.Outputs(ctx, gone+".drv")
			return err
		}},
		{"output", "nix", "", "echo 'nix (Nix) 2.18.1'\n", func(ctx context.Context, n Nix) error {
			_, err := n.Output(ctx, "--version")
			return err
		}},
		// The serve handshake fails: PathInfos falls back to path-info.
		{"path-info", "nix", "exit 1\n", "printf '{}'\n", func(ctx context.Context, n Nix) error {
			_, err := n.PathInfos(ctx, false, gone)
			return err
		}},
		// The handshake fails, with the helper left by nix-store.
		{"serve start", "nix-store", "exit 1\n", "printf '{}'\n", func(ctx context.Context, n Nix) error {
			s := n.NewSession()
			defer s.Shut()
			_, err := s.PathInfos(ctx, false, gone)
			return err
		}},
		// The session's server answers, then ends at the end of its
		// input when the session is shut.
		{"serve stop", "nix-store", "cat $d/reply\ncat >/dev/null\n", "", func(ctx context.Context, n Nix) error {
			s := n.NewSession()
			defer s.Shut()
			_, err := s.PathInfos(ctx, false, gone)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			killPidFile(t, pids)
			if err := os.WriteFile(filepath.Join(dir, "reply"), hello().str("").Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			for name, body := range map[string]string{"nix-store": tc.nixStore, "nix": tc.nix} {
				// Only the program the case is about leaves a helper.
				script := "#!/bin/sh\nd=" + dir + "\n"
				if name == tc.leaves {
					script += helper
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(script+body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.call(context.Background(), Nix{BinDir: dir}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(pids)
			if err != nil {
				t.Fatalf("the fake left no helper: %v", err)
			}
			for _, s := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(s)
				eventually.True(t, eventually.Left(t), "the helper "+s+" left in the group to be killed", func() bool {
					return !running(pid)
				})
			}
		})
	}
}

// running says whether pid is a process that has not exited (a zombie
// has).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
