package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/logfile"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// used is one thing the configuration names that the worker will read or
// run: the token file, a signing key, cachix, Nix's programs in
// nix.bin_dir. validate and doctor check them with checkUsed, the way the
// worker will use them, so that neither passes what the worker refuses.
type used struct {
	check string // doctor's check name
	key   string // the config key, for validate's message; "" when err names it
	place string // where a target's store was set, for validate's message, with key ""
	ok    string // what was found, when usable
	err   error  // why the worker cannot use it
	fix   string
}

// checkUsed checks what cfg names that the worker will use. cachix.bin is
// looked up in path, described by where ("your PATH", "nix-daemon's
// PATH (pid N)"): the worker the hook starts has the hook's environment,
// env, in which cachix finds its own config. nixEnv is the environment
// nix copy, run by that worker, will have when known (nix-daemon's), nil
// for a clean one: where the daemon's socket is (NIX_DAEMON_SOCKET_PATH,
// NIX_STATE_DIR) is the worker's to say, not the checking command's. cmd
// is the command checking ("doctor", "validate"), for the fix of a
// secret only root can read.
func checkUsed(cfg *config.Config, env, nixEnv []string, path, where, cmd string) []used {
	var out []used
	cachix := usesCachix(cfg)
	if f := cfg.Cachix.AuthTokenFile; f != "" && cachix {
		u := used{check: "token", key: "cachix.auth_token_file", ok: "auth token in " + f}
		if _, err := config.ReadToken(f); err != nil {
			u.err, u.fix = err, tokenFix(f)
			if errors.Is(err, fs.ErrNotExist) {
				u.err = fmt.Errorf("the token file %s does not exist", f)
			} else if fix := notReadableFix(err, cmd); fix != "" {
				u.fix = fix
			}
		}
		out = append(out, u)
	}
	for _, err := range cfg.CheckKeyFiles() {
		check, fix := "signing key", notReadableFix(err, cmd)
		var ke *config.StoreKeyError
		if errors.As(err, &ke) && ke.Private {
			// ssh or Nix logs in with it: no signing key replaces it.
			check = "private key"
			if fix == "" {
				fix = "make the key the worker's user's own (chown), readable by it alone (chmod 600), in directories only it can write, or fix the key's path"
			}
		}
		if fix == "" {
			fix = "write the key with nix-store --generate-binary-cache-key (chmod 600, owned by the user the worker runs as), or fix the key's path"
		}
		out = append(out, used{check: check, err: err, fix: fix})
	}
	for _, t := range cfg.Targets {
		// nix copy writes a file:// cache or a local store as root: the
		// worker refuses one another user could write in.
		if t.Store == "" {
			continue
		}
		dirs := config.FileStoreDirs(t.Store)
		if len(dirs) == 0 {
			var storeDirs []string
			dirs, storeDirs = config.LocalStoreDirs(t.Store)
			dirs = append(dirs, storeDirs...)
		}
		// As the worker, whatever dirs holds: a store with none of its
		// own may have a lower-store= that is refused.
		err := config.CheckStoreDirsIn(t.Store, nixEnv)
		socks := config.UnixSocketPaths(t.Store)
		lowers := config.LowerStores(t.Store)
		if len(dirs) > 0 || len(socks) > 0 || len(lowers) > 0 || err != nil {
			u := used{check: "store", place: fmt.Sprintf("%s = %q", cfg.StorePlace(t), config.RedactURI(t.Store))}
			switch {
			case len(dirs) > 0:
				u.ok = fmt.Sprintf("target %q writes to %s", t.Name, dirs[0])
			case len(socks) > 0:
				// Checked as a directory is: say so as for one.
				u.ok = fmt.Sprintf("target %q hands its paths to the daemon at %s", t.Name, socks[0])
			case len(lowers) > 0:
				// No directory of its own: its lower store was
				// checked, and is what the line can name.
				u.ok = fmt.Sprintf("target %q overlays the lower store %s", t.Name, config.RedactURI(lowers[0]))
			}
			if err != nil {
				u.err = fmt.Errorf("target %q: %w", t.Name, err)
				u.fix = "nix copy writes there as the user the worker runs as (root): make the directory, and each above it, writable by that user alone, or set store to a directory that is"
				if trust.IsRefusal(err) {
					// It says how to mend it: a directory another
					// user could write is made anew, or left if shared
					// by design (/tmp), not chowned or chmodded, which
					// would keep what they put in it.
					u.fix = "nix copy writes there as the user the worker runs as (root): do as said above, or set store to a directory of that user's alone"
				}
				var se *config.StoreSocketError
				var le *config.LowerStoreError
				switch {
				case errors.As(err, &se):
					// A socket, the target's or a lower store's, not
					// a directory nix copy writes in: the refusal
					// says how to name or bind it.
					u.fix = "nix copy hands the paths to the daemon listening there, as the user the worker runs as (root): do as said above"
				case errors.As(err, &le):
					u.fix = "nix copy opens the lower store as the user the worker runs as (root): do as said above"
				}
			}
			out = append(out, u)
		}
	}
	if cachix {
		out = append(out, findCachix(cfg.Cachix.Bin, path, where), cachixConfig(env, cfg.Cachix.PushArgs))
	}
	if dir := cfg.Nix.BinDir; dir != "" {
		out = append(out, nixBinDir(dir)...)
	}
	out = append(out, logFile(cfg))
	if f := cfg.Metrics.File; f != "" {
		// The worker writes it (as root, under nix-daemon): into
		// directories that pass the trust rule only.
		u := used{check: "metrics", key: "metrics.file", ok: "metrics written to " + f}
		if err := trust.CheckParents(f); err != nil {
			u.err, u.fix = err, "make "+filepath.Dir(f)+" a directory owned by the user the worker runs as (root), mode 0755, with such parents"
		}
		out = append(out, u)
	}
	return out
}

// logFile checks log.file as the worker will open it: a worker that
// cannot open its log does not start, and a detached one could say so
// nowhere but state.json.
func logFile(cfg *config.Config) used {
	u := used{check: "log", key: "log.file", ok: "worker log " + cfg.Log.File}
	file := cfg.Log.File
	if filepath.Dir(file) == cfg.Queue.Dir {
		if _, err := os.Lstat(cfg.Queue.Dir); errors.Is(err, fs.ErrNotExist) {
			return u // made with the queue directory, by the first hook
		}
	}
	if err := logfile.Check(file); err != nil {
		u.err, u.fix = err, logFix(file)
	}
	return u
}

func usesCachix(cfg *config.Config) bool {
	for _, t := range cfg.Targets {
		if t.Cache != "" {
			return true
		}
	}
	return false
}

// findCachix finds cachix.bin as exec would in path, or takes it as given
// when absolute, and applies the trust rule to what it finds: the worker
// refuses to run a cachix another user could change.
func findCachix(bin, path, where string) used {
	u := used{check: "cachix", key: "cachix.bin"}
	p, how := bin, "set in cachix.bin"
	if filepath.IsAbs(bin) {
		if err := executable(bin); err != nil {
			u.err, u.fix = err, "install cachix there, or set cachix.bin to where it is"
			if errors.Is(err, fs.ErrNotExist) {
				u.err = fmt.Errorf("%s does not exist", bin)
			}
			return u
		}
	} else {
		p = ""
		for _, dir := range filepath.SplitList(path) {
			// A relative entry depends on the working directory,
			// which is / for the worker: not what was meant.
			if dir == "" || !filepath.IsAbs(dir) {
				continue
			}
			if c := filepath.Join(dir, bin); executable(c) == nil {
				p, how = c, "found in "+where
				break
			}
		}
		if p == "" {
			u.err = fmt.Errorf("%q is not in %s (%s)", bin, where, path)
			u.fix = "set cachix.bin in hook.conf to cachix's absolute path"
			return u
		}
	}
	if _, err := trust.Check(p, trust.Program); err != nil {
		u.err, u.fix = err, "the worker refuses to run it: fix its owner or mode, or set cachix.bin to a trusted copy"
		return u
	}
	u.ok = fmt.Sprintf("%s, %s", p, how)
	return u
}

// cachixConfig checks cachix's own cachix.dhall as the worker does
// before each cachix call, in the environment a worker the hook starts
// from env will have: the worker refuses to run cachix while it is
// another user's, or missing where another user could make it.
func cachixConfig(env, pushArgs []string) used {
	env = worker.Env(env)
	// As cachix push gets them: cachix pin gets push_args' global
	// options too (-c, before the subcommand: pusher.cachixGlobalArgs),
	// so it reads this file.
	args := append([]string{"push"}, pushArgs...)
	u := used{check: "cachix config"}
	// From the worker's working directory, /, where the hook starts
	// it, not ours: a relative -c or HOME is cachix's to resolve there.
	file := pusher.CachixConfigFile("/", env, args)
	if file == "" {
		u.ok = "cachix finds no config of its own (no HOME)"
		return u
	}
	if err := pusher.CheckCachixConfig("/", env, args); err != nil {
		u.err = err
		u.fix = "the worker runs no cachix until then: make " + file + " (or, missing, its nearest directory) and each directory above it the worker's user's (root's) alone, or remove it, or give the worker a HOME of that user's"
		return u
	}
	u.ok = "cachix's own config " + file + " passes the trust rule"
	if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) {
		u.ok = "cachix's own config " + file + " does not exist, and only the worker's user could make it"
	}
	return u
}

// nixBinDir checks that nix.bin_dir holds nix and nix-store that the
// worker will run: it looks nowhere else.
func nixBinDir(dir string) []used {
	var out []used
	nix := nixstore.Nix{BinDir: dir}
	for _, prog := range []string{"nix", "nix-store"} {
		_, err := nix.Trusted(prog)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, used{check: "nix.bin_dir", key: "nix.bin_dir", err: fmt.Errorf("%s has no %s", dir, prog),
				fix: "set nix.bin_dir in hook.conf to the directory holding nix and nix-store, or remove it to use PATH"})
		default:
			out = append(out, used{check: "nix.bin_dir", key: "nix.bin_dir", err: err,
				fix: "the worker refuses to run it: fix its owner or mode, or set nix.bin_dir to a trusted Nix"})
		}
	}
	if len(out) == 0 {
		out = append(out, used{check: "nix.bin_dir", ok: "nix and nix-store in " + dir})
	}
	return out
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// notReadableFix is the fix for a secret that the user checking cannot
// read, "" for any other error: the secret of root's hook.conf is root's,
// mode 0600, as it must be, so that a user who checks without sudo is
// told to check as root, not to write a new secret over the one the
// worker uses.
func notReadableFix(err error, cmd string) string {
	if !errors.Is(err, fs.ErrPermission) || os.Geteuid() == 0 {
		return ""
	}
	return "you cannot read it, which is right for a secret of root's: if the worker runs as root (it does under nix-daemon), check as root: sudo cachix-filter-hook " + cmd + "; else make the file yours (chown, chmod 600)"
}

// tokenFix says how to put a Cachix token in file f: where a token comes
// from, and how to store it without its showing in argv or a shell's
// history.
func tokenFix(f string) string {
	return "create a token on app.cachix.org (your cache's settings, auth tokens), then run `install -D -m 0600 /dev/stdin " + f + "`, paste it and press Ctrl-D (as the user the worker runs as)"
}

// usedError is a problem checkUsed found, as validate prints it, in
// doctor's words and with its fix: naming the file and line or the
// variable that set the key.
func usedError(cfg *config.Config, u used) string {
	msg := u.err.Error()
	if u.key != "" {
		where := cfg.Place(u.key)
		if where == "" {
			where = "default"
		}
		msg = fmt.Sprintf("%s: %s: %s", where, u.key, msg)
	} else if u.place != "" {
		msg = placedMessage(u)
	}
	if u.fix != "" {
		msg += "; fix: " + u.fix
	}
	return msg
}

// placedMessage is u's message, its refusal or what passed, after the
// place its store was set (u.place), for validate and doctor alike. The
// place names the target: a refusal's own naming of it is dropped.
func placedMessage(u used) string {
	msg := u.ok
	if u.err != nil {
		msg = u.err.Error()
		if inner := errors.Unwrap(u.err); inner != nil {
			msg = inner.Error()
		}
	}
	return u.place + ": " + msg
}
