package worker

import (
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
)

// A running worker follows its configuration (issue 9 item 7): a worker
// the hook started with failing entries never exits, so without this a
// fixed cachix.bin or a new deny rule would never reach it, `retry`
// included. Each round of the loop it stats the config file and re-reads
// and re-hashes it only when the file's identity changed (size, mtime,
// ctime, inode), and every rehashEvery anyway, since a rewrite can keep
// size and mtime. A changed fingerprint is loaded with config.Load, the
// same trust checks as at start, and swapped in whole between rounds:
// pushers, targets, rules and the facts gatherer; the queue's state
// stays. A version that does not load is logged and left: the worker
// keeps the configuration it has (never part of the new one) and tries
// again when the file changes, on `retry`, or after a back-off, so an
// invalid config never makes it spin.

// Timing of the checks; variables for the tests.
var (
	rehashEvery  = 5 * time.Second
	loadRetryMin = 5 * time.Second
	loadRetryMax = time.Minute
)

// Watch says where the worker's configuration came from, so that it can
// notice a change and load it again.
type Watch struct {
	// Flag is --config as the worker was given it.
	Flag string
	// Loaded is the fingerprint taken right before the configuration the
	// worker starts with was loaded (TakeFingerprint).
	Loaded Fingerprint
	// Prepare readies what lives outside the worker for a new
	// configuration (the command's log file). It returns the function
	// that switches over, called only once nothing else can fail, or an
	// error that rejects the configuration. Nil: nothing to prepare.
	Prepare func(*config.Config) (commit func(), err error)
	// Load loads the configuration; nil is config.Load(Flag).
	Load func() (*config.Config, error)
}

// fileStat is the cheap identity of the config file (see statOf).
type fileStat struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

// statOf is what a cheap check compares: a rewrite in place changes size
// or mtime, a chmod or chown the ctime (see ctimeOf), a rename over the
// file the inode.
func statOf(fi fs.FileInfo) fileStat {
	s := fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), uint64(st.Ino)
		s.ctime = ctimeOf(st)
	}
	return s
}

// seen is what one look at the config found, before reading it.
type seen struct {
	file string
	stat fileStat
	err  string // why Find or stat failed
}

// configWatch is the worker's side of a Watch.
type configWatch struct {
	Watch
	cur    Fingerprint // of the configuration in use
	loaded time.Time
	last   seen      // at the last hash
	hashed time.Time // when the file was last read and hashed
	// bad is a version that failed to load, with what was seen then
	// and why, and when to try it again.
	bad     *Fingerprint
	badSeen seen
	badErr  string
	tries   int
	nextTry time.Time
}

// WatchConfig makes the worker follow its configuration (see above).
// Without it, as in most unit tests, the worker keeps the one it got.
func (w *Worker) WatchConfig(wt Watch) {
	if wt.Load == nil {
		flag := wt.Flag
		wt.Load = func() (*config.Config, error) { return config.Load(flag) }
	}
	w.watch = &configWatch{Watch: wt, cur: wt.Loaded, loaded: time.Now()}
}

// setConfig makes cfg the worker's configuration: everything built from
// it is built again, what the worker knows of the queue stays, and so do
// the facts of store paths while the same Nix is asked.
func (w *Worker) setConfig(cfg *config.Config) {
	old := w.cfg
	w.cfg = cfg
	w.live.Store(cfg)
	w.nix = nixstore.Nix{BinDir: cfg.Nix.BinDir}
	w.pushers = map[string]pusher.Pusher{}
	for _, t := range cfg.Targets {
		w.pushers[t.Name] = w.newPusher(cfg, t)
	}
	// What Nix and the upstreams said of a store path does not depend
	// on the rules: kept while the same Nix is asked the same way. A
	// batch set aside by the reload (batch.go) is then decided again
	// without asking anew, and a hook.conf that changes often cannot
	// keep it from its push by discarding its facts each time.
	if w.facts == nil || old == nil || old.Nix.BinDir != cfg.Nix.BinDir ||
		old.UpstreamTimeout != cfg.UpstreamTimeout || old.UpstreamDeadline != cfg.UpstreamDeadline {
		if w.facts != nil {
			w.facts.nix.Shut()
		}
		session := w.nix.NewSession()
		w.facts = &factState{gather: pathfacts.NewWith(cfg, session), nix: session}
	}
	// Targets may have come or gone: say again which are unknown.
	w.orphans = map[string]bool{}
	// A destination the configuration no longer names need not stay
	// open; the records are kept by destination (see remember).
	w.closeRecords()
}

// look finds the config file and stats it, without reading it.
func (cw *configWatch) look() seen {
	file, err := config.Find(cw.Flag)
	if err != nil {
		return seen{err: err.Error()}
	}
	s := seen{file: file}
	if file == "" {
		return s
	}
	fi, err := os.Stat(file)
	if err != nil {
		s.err = err.Error()
		return s
	}
	s.stat = statOf(fi)
	return s
}

// checkConfig reloads the configuration if it changed. force (a retry
// request) reads the file whatever its stat says and tries a version that
// failed to load again at once: `retry` after a fix must push with it.
func (w *Worker) checkConfig(now time.Time, force bool) {
	cw := w.watch
	if cw == nil {
		return
	}
	s := cw.look()
	retryBad := cw.bad != nil && !now.Before(cw.nextTry)
	if !force && !retryBad && s == cw.last && now.Sub(cw.hashed) < rehashEvery {
		return
	}
	var fp Fingerprint
	if s.err != "" && s.file == "" {
		fp = TakeFingerprint(cw.Flag)
	} else {
		fp = FingerprintOf(s.file)
	}
	cw.last, cw.hashed = s, now
	if fp.Equal(cw.cur) {
		if cw.bad != nil {
			w.log.WithField("config", configName(cw.cur.File)).Info("the configuration is back to the version in use")
			cw.bad = nil
			w.saveWorkerInfo("")
		}
		return
	}
	if cw.bad != nil && fp.Equal(*cw.bad) && s == cw.badSeen && !force && now.Before(cw.nextTry) {
		return
	}
	c, err := cw.Load()
	var commit func()
	if err == nil && cw.Prepare != nil {
		commit, err = cw.Prepare(c)
	}
	if err != nil {
		if cw.bad != nil && fp.Equal(*cw.bad) {
			cw.tries++
		} else {
			cw.tries = 1
		}
		cw.bad, cw.badSeen, cw.badErr = &fp, s, err.Error()
		wait := loadRetryMin
		for i := 1; i < cw.tries && wait < loadRetryMax; i++ {
			wait *= 2
		}
		wait = min(wait, loadRetryMax)
		cw.nextTry = now.Add(wait)
		w.log.WithError(err).WithFields(logrus.Fields{
			"config":    configName(s.file),
			"in_use":    cw.loaded.Format(time.RFC3339),
			"next_load": wait.String(),
		}).Error("the configuration changed but cannot be loaded; the worker keeps the one it has")
		w.saveWorkerInfo(err.Error())
		return
	}
	if commit != nil {
		commit()
	}
	old := w.cfg
	w.setConfig(c)
	// A shorter queue.retry_max holds for back-offs already set.
	w.capBackoffs(now, c.Queue.RetryMax)
	cw.cur, cw.loaded, cw.bad, cw.tries = fp, now, nil, 0
	w.log.WithFields(logrus.Fields{"config": configName(c.File), "digest": fp.Short(), "targets": len(c.Targets)}).
		Info("the configuration changed: reloaded")
	for _, warn := range c.Warnings {
		w.log.Warn(warn)
	}
	if c.Queue.Dir != old.Queue.Dir && c.Queue.Dir != w.q.Dir {
		// Entries here were queued for this worker; a worker for the
		// new directory starts with the first hook that queues there.
		w.log.WithFields(logrus.Fields{"queue": w.q.Dir, "new_queue": c.Queue.Dir}).
			Warn("queue.dir changed: this worker keeps draining its queue with the new configuration")
	}
	w.saveWorkerInfo("")
}

// saveWorkerInfo records in state.json what the worker runs with, for
// status: configErr is why a changed configuration was not loaded.
func (w *Worker) saveWorkerInfo(configErr string) {
	info := &WorkerInfo{
		PID:     os.Getpid(),
		Started: w.started.UTC(),
		LogFile: w.cfg.Log.File,
		Fingerprint: Fingerprint{
			File: w.cfg.File,
		},
	}
	if cw := w.watch; cw != nil {
		info.Fingerprint = cw.cur
		info.Loaded = cw.loaded.UTC()
		if configErr != "" {
			info.ConfigError = truncate(configErr, 2000)
			info.ConfigErrorTime = time.Now().UTC()
		}
	}
	w.state.setWorker(w.q.Dir, info)
}

func configName(file string) string {
	if file == "" {
		return "(environment only)"
	}
	return file
}
