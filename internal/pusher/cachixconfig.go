package pusher

import (
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// CachixConfigFile is the file cachix reads its settings from, found as
// cachix finds it (getXdgDirectory XdgConfig "cachix"): in
// $XDG_CONFIG_HOME when that is absolute, else in $HOME/.config; "" when
// neither says and the user has no home.
func CachixConfigFile(env []string) string {
	get := func(k string) string {
		v := ""
		for _, kv := range env {
			if rest, ok := strings.CutPrefix(kv, k+"="); ok {
				v = rest // exec keeps the last of duplicates
			}
		}
		return v
	}
	dir := get("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home := get("HOME")
		if home == "" {
			if u, err := user.Current(); err == nil {
				home = u.HomeDir
			}
		}
		if !filepath.IsAbs(home) {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "cachix", "cachix.dhall")
}

// CheckCachixConfig applies the trust rule to the cachix.dhall cachix
// will read with env, before each cachix call and in validate and doctor. It names the server cachix sends the token to and
// uploads to (hostname), and Dhall imports other files and URLs: whoever
// could write it, or make it where it is missing (a HOME of another
// user's that a sudo kept), would get the token of the cache root pushes
// to. Mode 0644 is fine: it need not be private, only nobody else's.
func CheckCachixConfig(env []string) error {
	file := CachixConfigFile(env)
	if file == "" {
		return nil
	}
	_, err := trust.Check(file, trust.File)
	if errors.Is(err, fs.ErrNotExist) {
		// Missing: nobody else may make it, nor a directory above it.
		err = trust.CheckWriteDir(filepath.Dir(file))
	}
	if err != nil {
		return fmt.Errorf("cachix's own config %s (it names where the token goes): %w", file, err)
	}
	return nil
}
