package worker

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/queue"
)

// Spawn starts a detached worker for the queue of cfg and does not wait
// for it. Nix reads the hook's stdout and stderr until EOF, so the worker
// must not inherit them: it gets /dev/null for all three, no other
// descriptor (Go opens everything close-on-exec), and a session of its own
// so that nothing aimed at the build's process group reaches it.
func Spawn(cfg *config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	defer devnull.Close()
	args := []string{exe}
	if cfg.File != "" {
		args = append(args, "--config", cfg.File)
	}
	args = append(args, "worker", "--spawned")
	env := append(workerEnv(os.Environ()), config.EnvName("queue.dir")+"="+cfg.Queue.Dir)
	p, err := os.StartProcess(exe, args, &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	return p.Release()
}

// workerEnv fills in HOME and the XDG directories when the hook's
// environment lacks them (nix-daemon's often does): cachix reads its
// config from ~/.config/cachix.
func workerEnv(env []string) []string {
	get := func(k string) string {
		for _, kv := range env {
			if len(kv) > len(k) && kv[:len(k)+1] == k+"=" {
				return kv[len(k)+1:]
			}
		}
		return ""
	}
	home := get("HOME")
	if home == "" || home == "/homeless-shelter" {
		home = "/"
		if u, err := user.Current(); err == nil && u.HomeDir != "" {
			home = u.HomeDir
		}
		out := env[:0:0]
		for _, kv := range env {
			if len(kv) < 5 || kv[:5] != "HOME=" {
				out = append(out, kv)
			}
		}
		env = append(out, "HOME="+home)
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
