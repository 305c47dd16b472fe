package pusher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// A relative -c, or a HOME, with ".." after a link was made absolute with
// filepath.Join, which drops "link/.." lexically: the trust rule checked
// root's file beside the link, while cachix, opening the path as written,
// read the one above the link's target, here another user's.
func TestCachixConfigDotDotAfterLink(t *testing.T) {
	u := testuser.New(t)
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	mk := func(p string) string {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(p string) string {
		if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	theirs := mk(filepath.Join(base, "theirs"))
	mk(filepath.Join(theirs, "sub"))
	mk(filepath.Join(theirs, ".config", "cachix"))
	write(filepath.Join(theirs, "cachix.dhall"))
	write(filepath.Join(theirs, ".config", "cachix", "cachix.dhall"))
	for _, p := range []string{theirs, filepath.Join(theirs, "sub"), filepath.Join(theirs, "cachix.dhall"), filepath.Join(theirs, ".config"), filepath.Join(theirs, ".config", "cachix"), filepath.Join(theirs, ".config", "cachix", "cachix.dhall")} {
		u.Chown(t, p)
	}
	ours := mk(filepath.Join(base, "root"))
	mk(filepath.Join(ours, ".config", "cachix"))
	write(filepath.Join(ours, "cachix.dhall"))
	write(filepath.Join(ours, ".config", "cachix", "cachix.dhall"))
	if err := os.Symlink(filepath.Join(theirs, "sub"), filepath.Join(ours, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"-c", "root/link/../cachix.dhall", "push"}},
		{[]string{"HOME=" + ours + "/link/.."}, []string{"push"}},
	} {
		err := CheckCachixConfig(base, c.env, c.args)
		if err == nil || !strings.Contains(err.Error(), u.Name) {
			t.Errorf("env %q, args %q: CheckCachixConfig = %v, want %s's file, which cachix reads, refused", c.env, c.args, err, u.Name)
		}
	}
}
