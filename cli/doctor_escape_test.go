package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// doctor's lines carry what it read from the queue (an entry's last
// error) and from Nix: a control character there reached the terminal
// as it was, where errorf escapes it.
func TestDoctorEscapesControls(t *testing.T) {
	q, dir := testQueue(t)
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	// A Nix store target and a nix.bin_dir without Nix: doctor runs no
	// Nix here, and reads no setting of this machine's.
	file := filepath.Join(dir, "hook.conf")
	nixDir := filepath.Join(dir, "nix")
	if err := os.Mkdir(nixDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[[target]]\nname = \"main\"\nstore = \"file:///nonexistent\"\nallow = [\"*\"]\n[nix]\nbin_dir = %q\n[queue]\ndir = %q\n", nixDir, q.Dir)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	entry := `{"target":"main","path":"/nix/store/c9r346p3d25vs4g5v37f3r3f28js97kb-bad-1","queued":"2026-11-24T00:00:00Z","attempts":1,"next_attempt":"2099-01-01T00:00:00Z","last_error":"boom \u001b[2J\u001b]0;owned\u0007"}` + "\n"
	if err := os.WriteFile(filepath.Join(q.Dir, "entries", "c9r346p3d25vs4g5v37f3r3f28js97kb."+queue.TargetDigest("main")), []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	e, _, out := loadedEnv(t, file)
	runDoctor(e, false)
	if !strings.Contains(out.String(), `boom \x1b[2J\x1b]0;owned\x07`) || strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("doctor printed the entry's control characters unescaped:\n%q", out.String())
	}
}
