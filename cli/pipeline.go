package cli

import (
	"errors"
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/logfile"
	"github.com/cachix-filter-hook/cachix-filter-hook/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/worker"
)

func runHook(e *env) int {
	fs := e.flags("hook", "", "Run as Nix's post-build-hook (what nix.conf's post-build-hook calls, with no\narguments): read OUT_PATHS (or DRV_PATH's outputs), queue what the rules\nselect, start a worker, and exit 0 whatever happens (unless strict = true).")
	if st, ok := e.parse(fs); !ok {
		return st
	}
	return hook.Run(e.ctx, e.configFlag, hook.Env{OutPaths: os.Getenv("OUT_PATHS"), DrvPath: os.Getenv("DRV_PATH")}, e.stderr)
}

func runWorker(e *env) int {
	fs := e.flags("worker", "[--once]", "Drain the queue in the foreground, as a systemd service does. Exactly one\nworker drains a queue at a time; a second one waits for the lock.")
	once := fs.Bool("once", false, "exit when nothing more can be pushed now (exit 1 if entries wait for a retry)")
	spawned := fs.Bool("spawned", false, "run as the hook's detached worker: leave if another runs, exit after queue.linger idle")
	if st, ok := e.parse(fs); !ok {
		return st
	}
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	mode := worker.Service
	switch {
	case *spawned:
		mode = worker.Spawned
	case *once:
		mode = worker.Once
	}
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	log, closeLog, err := workerLog(c, mode != worker.Spawned, e.stderr)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	defer closeLog()
	err = worker.New(c, q, log).Run(e.ctx, mode)
	switch {
	case err == nil, errors.Is(err, e.ctx.Err()) && e.ctx.Err() != nil:
		return 0
	case errors.Is(err, worker.ErrLeft):
		e.errorf("%v (see `cachix-filter-hook status`)", err)
		return 1
	default:
		log.WithError(err).Error("worker failed")
		e.errorf("%v", err)
		return 1
	}
}

// workerLog logs to log.file, rotated at log.max_size, and also to stderr
// for a worker in the foreground (systemd's journal).
func workerLog(c *config.Config, foreground bool, stderr io.Writer) (*logrus.Logger, func(), error) {
	f, err := logfile.Open(c.Log.File, c.Log.MaxSize)
	if err != nil {
		return nil, nil, err
	}
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	level, _ := logrus.ParseLevel(c.Log.Level)
	log.SetLevel(level)
	var out io.Writer = f
	if foreground {
		out = io.MultiWriter(f, stderr)
	}
	log.SetOutput(out)
	return log, func() { f.Close() }, nil
}
