package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// forget removes the pins of removed targets (or of --target T) with their
// entries, and leaves the others.
func TestForgetPins(t *testing.T) {
	for _, k := range []string{config.EnvConfig, config.EnvName("cache"), config.EnvName("queue.dir")} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	qdir := filepath.Join(dir, "queue")
	q, err := queue.Open(qdir)
	if err != nil {
		t.Fatal(err)
	}
	root := storepath.Path{Dir: storepath.StoreDir(), Hash: "0123456789abcdfghijklmnpqrsvwxyz", Name: "nixos-system-1"}
	if _, err := q.AddPins([]queue.Pin{
		{Target: "main", Path: root.String(), Name: "sys"},
		{Target: "removed", Path: root.String(), Name: "sys"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "hook.conf")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("cache = \"main\"\nallow = [\"*\"]\n[queue]\ndir = %q\n", qdir)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e := &env{ctx: context.Background(), configFlag: file, args: nil, stdout: &out, stderr: &out}
	if st := runForget(e, &forgetOptions{}); st != 0 {
		t.Fatalf("forget: %d\n%s", st, &out)
	}
	if !strings.Contains(out.String(), `forgot pin "sys" of `+root.String()+` -> removed (not pinned)`) {
		t.Errorf("forget says:\n%s", &out)
	}
	pins, _, _ := q.ListPins()
	if len(pins) != 1 || pins[0].Target != "main" {
		t.Errorf("pins left: %+v", pins)
	}
}
