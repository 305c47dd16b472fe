package pusher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// CachixConfigFile is the file cachix run with args (its argv after the
// program) reads its settings from, found as cachix finds it: the one a
// -c/--config among args names (see configFlag), else
// getXdgDirectory XdgConfig "cachix": in $XDG_CONFIG_HOME when that is
// absolute, else in $HOME/.config, HOME taken as set, empty or relative
// (then cachix's working directory's, which is the worker's), the
// passwd entry's only when unset; "" when there is none. A relative path
// is taken from wd, cachix's working directory: "" for this process's
// (the worker, which runs cachix in its own); validate and doctor pass
// "/", where the hook starts the worker.
func CachixConfigFile(wd string, env, args []string) string {
	if f, ok := configFlag(args); ok {
		return fromDir(wd, f)
	}
	dir, _ := config.LookupEnv(env, "XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home, set := config.LookupEnv(env, "HOME")
		if !set {
			u, err := user.Current()
			if err != nil || u.HomeDir == "" {
				return ""
			}
			home = u.HomeDir
		}
		dir = fromDir(wd, join(home, ".config"))
		if dir == "" {
			return ""
		}
	}
	return join(dir, "cachix/cachix.dhall")
}

// join is dir/name, not cleaned: cachix opens it so, and the kernel
// takes a ".." in it above a link's target, not lexically (which
// filepath.Join would), so that trust.Check walks what cachix opens.
func join(dir, name string) string {
	if dir == "" {
		return name // an empty HOME: the working directory's
	}
	return strings.TrimRight(dir, "/") + "/" + name
}

// fromDir is p made absolute, not cleaned (see join), from wd, or from
// this process's working directory when wd is ""; "" when that cannot
// be found.
func fromDir(wd, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if wd == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return ""
		}
	}
	return join(wd, p)
}

// CheckCachixConfig applies the trust rule to the cachix.dhall cachix
// will read with env and args, before each cachix call and in validate
// and doctor. It names the server cachix sends the token to and
// uploads to (hostname), and Dhall imports other files and URLs: whoever
// could write it, or make it where it is missing (a HOME of another
// user's that a sudo kept), would get the token of the cache root pushes
// to. Mode 0644 is fine: it need not be private, only nobody else's.
// wd is cachix's working directory, as for CachixConfigFile.
func CheckCachixConfig(wd string, env, args []string) error {
	file := CachixConfigFile(wd, env, args)
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

// cachixArgShorts are cachix push's short options that take a value:
// within a bundle such as -j8, the rest is that value, not more options.
const cachixArgShorts = "lmsnj"

// configFlag returns the file the last -c/--config among args names
// (before a "--"), as cachix parses them, before the subcommand or, as
// push_args once put them, after it: cachix.push_args can name one, as
// "-c F", "-cF", "--config F", "--config=F" or at the end of a bundle of
// switches ("-vc F"), which cachixGlobalArgs puts before the subcommand.
// It is returned as written: a relative one is cachix's working
// directory's (see CachixConfigFile).
func configFlag(args []string) (string, bool) {
	file, found := "", false
	take := func(v string) { file, found = v, true }
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return file, found
		case a == "--config":
			if i+1 < len(args) {
				i++
				take(args[i])
			}
		case strings.HasPrefix(a, "--config="):
			take(strings.TrimPrefix(a, "--config="))
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--"):
			for j := 1; j < len(a); j++ {
				if a[j] == 'c' {
					if j+1 < len(a) {
						take(a[j+1:])
					} else if i+1 < len(args) {
						i++
						take(args[i])
					}
					break
				}
				if strings.IndexByte(cachixArgShorts, a[j]) >= 0 {
					if j+1 == len(a) {
						i++ // its value is the next argument
					}
					break
				}
			}
		}
	}
	return file, found
}
