package worker

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// Spawn starts a detached worker for the queue of cfg and does not wait
// for it. Nix reads the hook's stdout and stderr until EOF, so the worker
// must not inherit them: exec gives it /dev/null for all three, every other
// descriptor is marked close-on-exec first (Go opens its own files so, but
// not those the hook inherited), and it gets a session of
// its own so that nothing aimed at the build's process group reaches it.
func Spawn(cfg *config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	var args []string
	if cfg.File != "" {
		args = append(args, "--config", cfg.File)
	}
	cmd := exec.Command(exe, append(args, "worker", "--spawned")...)
	// Run the very binary that is running (the kernel's reference to
	// it), not whatever its path names by now: root runs the worker.
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		cmd.Path = "/proc/self/exe"
	}
	cmd.Dir = "/"
	cmd.Env = spawnEnv(cfg.Queue.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Descriptors the hook inherited (the build caller's pipes) would
	// otherwise pass on to the worker and hold the caller. Failing to
	// list them is no reason not to start the worker.
	_ = fds.CloseOnExec()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	return cmd.Process.Release()
}

// spawnEnv is the environment of the worker Spawn starts for the queue
// dir.
func spawnEnv(dir string) []string {
	// exec keeps the last of duplicate variables: these win over the
	// hook's own. The worker searches for hook.conf where the hook did,
	// not in the HOME Env may give it.
	return append(Env(os.Environ()), config.EnvName("queue.dir")+"="+dir, config.EnvUserConfigDir+"="+config.UserConfigDir())
}

// Env is the environment of a worker the hook starts from env: env with
// HOME and the XDG directories added when it lacks them (nix-daemon's
// often does): cachix reads its config from ~/.config/cachix. validate
// and doctor check that config as the worker will find it.
func Env(env []string) []string {
	get := func(k string) string {
		v, _ := config.LookupEnv(env, k)
		return v
	}
	home := get("HOME")
	if home == "" || home == "/homeless-shelter" {
		home = "/"
		if u, err := user.Current(); err == nil && u.HomeDir != "" {
			home = u.HomeDir
		}
		env = append(slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") }), "HOME="+home)
	}
	if get("XDG_CONFIG_HOME") == "" {
		env = append(env, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	}
	if get("XDG_CACHE_HOME") == "" {
		env = append(env, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	}
	return env
}

// EnsureRunning starts a worker unless one holds the queue's lock.
func EnsureRunning(cfg *config.Config, q *queue.Queue) error {
	running, err := q.WorkerRunning()
	if err != nil {
		return err
	}
	if running {
		return nil
	}
	return Spawn(cfg)
}
