package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/logfile"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

func runHook(e *env) int {
	return hook.Run(e.ctx, e.configFlag, hook.Env{OutPaths: os.Getenv("OUT_PATHS"), DrvPath: os.Getenv("DRV_PATH")}, e.stderr)
}

// workerOptions are worker's flags.
type workerOptions struct{ once, spawned bool }

func runWorker(e *env, o *workerOptions) int {
	// In /, where the hook starts it (worker.Spawn): run by hand, it
	// would otherwise give cachix and nix copy its own directory, in
	// which a relative -c, HOME or socket names another file than the
	// one validate and doctor checked from /. The configuration it was
	// named is found first, from where it was named.
	if err := workInRoot(e); err != nil {
		e.errorf("%v", err)
		return 1
	}
	// Before loading: a change in between is then a change from what
	// the fingerprint says, and is loaded at the first check.
	loaded := worker.TakeFingerprint(e.configFlag)
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		if o.spawned {
			// The hook loaded it a moment ago and queued with it; its
			// queue is in the environment Spawn gave.
			if q, qerr := queue.Open(os.Getenv(config.EnvName("queue.dir"))); qerr == nil {
				worker.RecordStartError(q, fmt.Errorf("loading the configuration: %w", err), "fix the configuration (cachix-filter-hook validate)")
			}
		}
		return 1
	}
	mode := worker.Service
	switch {
	case o.spawned:
		mode = worker.Spawned
	case o.once:
		mode = worker.Once
	}
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	wl, err := openWorkerLog(c, mode != worker.Spawned, e.stderr)
	if err != nil {
		// A detached worker has no log to say it in: state.json keeps
		// it for the hook's next line, status, wait and doctor.
		worker.RecordStartError(q, fmt.Errorf("log.file: %w", err), logFix(c.Log.File))
		e.errorf("%v", err)
		return 1
	}
	defer wl.close()
	log := wl.log
	if os.Getenv("GOGC") == "" {
		// The worker lives long in the background and its heap is
		// mostly its index of the queue: half of Go's default headroom
		// over the live heap keeps 100,000 queued entries under issue
		// 22's 48 MiB of peak RSS (bench/run.sh, section 5: 51 MiB at
		// the default, 44 MiB at 50), for a collector that already
		// takes about 1% of the worker's CPU. GOGC, when set, wins.
		debug.SetGCPercent(workerGCPercent)
	}
	w := worker.New(c, q, log)
	w.WatchConfig(worker.Watch{Flag: e.configFlag, Loaded: loaded, Prepare: wl.prepare})
	err = w.Run(e.ctx, mode)
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

// workerLog is the worker's log: log.file, rotated at log.max_size, and
// also stderr for a worker in the foreground (systemd's journal). A
// reloaded configuration may name another file, size or level.
type workerLog struct {
	log        *logrus.Logger
	f          *logfile.File
	file       string
	maxSize    int64
	foreground bool
	stderr     io.Writer
}

func openWorkerLog(c *config.Config, foreground bool, stderr io.Writer) (*workerLog, error) {
	f, err := logfile.Open(c.Log.File, c.Log.MaxSize)
	if err != nil {
		return nil, err
	}
	l := &workerLog{log: logrus.New(), foreground: foreground, stderr: stderr}
	l.log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	l.use(c, f)
	return l, nil
}

func (l *workerLog) use(c *config.Config, f *logfile.File) {
	level, _ := logrus.ParseLevel(c.Log.Level) // config.Load checked it
	l.log.SetLevel(level)
	l.f, l.file, l.maxSize = f, c.Log.File, c.Log.MaxSize
	var out io.Writer = f
	if l.foreground {
		out = io.MultiWriter(f, l.stderr)
	}
	l.log.SetOutput(out)
}

// prepare opens the log a new configuration names, if another one, so
// that a log.file the worker cannot open rejects the configuration (the
// worker keeps the old one) instead of leaving it without a log.
func (l *workerLog) prepare(c *config.Config) (func(), error) {
	f := l.f
	if c.Log.File != l.file || c.Log.MaxSize != l.maxSize {
		var err error
		if f, err = logfile.Open(c.Log.File, c.Log.MaxSize); err != nil {
			return nil, fmt.Errorf("log.file: %w", err)
		}
	}
	return func() {
		old := l.f
		l.use(c, f)
		if old != f {
			old.Close()
		}
	}, nil
}

func (l *workerLog) close() { l.f.Close() }

// logFix says how to mend a log.file the worker could not open.
func logFix(file string) string {
	err := logfile.Check(file)
	var ce *logfile.CheckError
	var te *trust.Error
	switch {
	case errors.As(err, &ce):
		return ce.Fix
	case errors.As(err, &te):
		return te.Fix + ", or set log.file"
	}
	return "set log.file in hook.conf to a regular file in a directory the worker can write"
}

// workerGCPercent is the worker's GOGC (see runWorker).
const workerGCPercent = 50

// workInRoot makes the configuration's path absolute (--config, else
// $CACHIX_FILTER_HOOK_CONFIG, as config.Find takes them), for the
// reloads to find it, and changes to /.
func workInRoot(e *env) error {
	flag := e.configFlag
	if flag == "" {
		flag = os.Getenv(config.EnvConfig)
	}
	if flag != "" && !filepath.IsAbs(flag) {
		abs, err := filepath.Abs(flag)
		if err != nil {
			return fmt.Errorf("finding the configuration %s: %w", flag, err)
		}
		e.configFlag = abs
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("changing to /: %w", err)
	}
	return nil
}
