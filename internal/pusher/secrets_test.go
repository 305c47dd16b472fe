package pusher

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// A store URI's credentials that reach the store pusher despite config
// (which refuses them) do not reach its output or its error: nix copy may
// quote the URI it was given.
func TestStorePusherRedactsURISecrets(t *testing.T) {
	fake(t, 1)
	bin := t.TempDir()
	if err := os.Symlink(exe(t), filepath.Join(bin, "nix")); err != nil {
		t.Fatal(err)
	}
	store := "https://nix:hunt%40er2@cache.example.org/c?token=tok-42&compression=zstd"
	t.Setenv(envOutput, "error: cannot connect to 'https://nix:hunt%40er2@cache.example.org/c?token=tok-42&compression=zstd' (user nix, password hunt@er2)\n")
	cfg := &config.Config{Nix: config.Nix{BinDir: bin}}
	var out bytes.Buffer
	err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &out)
	if err == nil {
		t.Fatal("Push succeeded")
	}
	for _, secret := range []string{"hunt%40er2", "hunt@er2", "tok-42"} {
		if strings.Contains(out.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q reached the output or the error:\n%s\n%v", secret, out.String(), err)
		}
	}
	if !strings.Contains(out.String(), "cannot connect to") {
		t.Errorf("output = %q", out.String())
	}
}
