package hook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// FuzzRun: whatever OUT_PATHS and DRV_PATH's .drv hold, the hook exits 0
// (strict is off) and says a few lines. An "@" in OUT_PATHS (or in the
// .drv) is the store directory and a slash, so that the fuzzer reaches
// valid store paths. The queue cannot be opened: nothing is spawned.
func FuzzRun(f *testing.F) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix+"_") {
			f.Setenv(k, "")
		}
	}
	f.Setenv("HOME", f.TempDir())
	f.Setenv("XDG_CONFIG_HOME", "")
	store := filepath.Join(f.TempDir(), "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Setenv("NIX_STORE_DIR", store)
	file := filepath.Join(f.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		f.Fatal(err)
	}
	cfgFile := filepath.Join(f.TempDir(), "hook.conf")
	cfg := fmt.Sprintf("cache = \"mycache\"\nallow = [\"hello-*\"]\ndeny = [\"*-doc\"]\n[queue]\ndir = %q\n[nix]\nbin_dir = %q\n",
		filepath.Join(file, "queue"), f.TempDir())
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		f.Fatal(err)
	}
	drvPath := storepath.New(store, strings.Repeat("0", storepath.HashLen), "hello-1.drv").String()
	out := "@" + mkPath("hello-1").Base()
	doc := "@" + mkPath("hello-1-doc").Base()
	f.Add(out+" "+doc, []byte(`Derive([("out","`+out+`","",""),("doc","`+doc+`","","")],[],[],"x","/bin/sh",[],[("allowSubstitutes","")])`))
	f.Add("", []byte(`Derive([("out","`+out+`","","")],[],[],"x","/bin/sh",[],[("__json","{\"allowSubstitutes\":false}")])`))
	f.Add("", []byte(`Derive([("out","","r:sha256","")],[],[],"x","/bin/sh",[],[])`))
	f.Add(" \t\n"+out+"\x00 @/etc/passwd", []byte("Derive([(\"out\",\"@a\\\"b\",\"\",\"\")]"))
	f.Fuzz(func(t *testing.T, outPaths string, drv []byte) {
		if err := os.WriteFile(drvPath, bytes.ReplaceAll(drv, []byte("@"), []byte(store+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		env := Env{OutPaths: strings.ReplaceAll(outPaths, "@", store+"/"), DrvPath: drvPath}
		if st := Run(context.Background(), cfgFile, env, &log); st != 0 {
			t.Errorf("Run = %d, want 0: %s", st, log.String())
		}
		if n := strings.Count(log.String(), "\n"); n > 4*(maxSayLines+1) || log.Len() > 4*(maxSayBytes+100) {
			t.Errorf("the hook said %d lines, %d bytes", n, log.Len())
		}
	})
}
