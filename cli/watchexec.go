package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storewatch"
)

// How long watch-exec keeps listening after the command exits: the
// kernel may still hold the last lock deletions.
const (
	watchQuiet = 300 * time.Millisecond
	watchMax   = 5 * time.Second
)

// watchOptions are watch-exec's flags.
type watchOptions struct {
	includeAdded bool
	waitFlags
}

func runWatchExec(e *env, o *watchOptions) int {
	argv := e.args
	// A hangup (a dropped ssh session) ends COMMAND as SIGTERM does, not
	// us: what it built is still queued. Caught, not ignored, so that
	// it stays default in COMMAND; one we were started with ignored
	// (nohup) stays ignored.
	if !signal.Ignored(syscall.SIGHUP) {
		ctx, stop := signal.NotifyContext(e.ctx, syscall.SIGHUP)
		defer stop()
		we := *e
		we.ctx = ctx
		e = &we
	}
	// A message to a stderr nobody reads any more (ssh without a
	// terminal, dropped) fails, instead of killing us by SIGPIPE before
	// we queued. Caught for the same reason as SIGHUP.
	if !signal.Ignored(syscall.SIGPIPE) {
		pipe := make(chan os.Signal, 1)
		signal.Notify(pipe, syscall.SIGPIPE)
		defer signal.Stop(pipe)
	}
	// The config first: better not to run the command than to run it
	// and push nothing.
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	storeDir := storepath.StoreDir()
	w, err := storewatch.Start(storeDir)
	if err != nil {
		e.errorf("watching %s: %v", storeDir, err)
		return 1
	}
	status, stopped := e.runCommand(argv)
	if stopped {
		w.Stop(0, 0)
		return status
	}
	found, overflow := w.Stop(watchQuiet, watchMax)
	if overflow {
		e.errorf("warning: the kernel dropped events while watching %s, or more paths came than watch-exec keeps: some new paths may have been missed (push them with `cachix-filter-hook push`)", storeDir)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 2*time.Minute)
	defer cancel()
	// One Nix call: which paths are valid (a lock is also deleted after
	// a failed build), and which were only added.
	infos, err := nixstore.Nix{BinDir: c.Nix.BinDir}.PathInfos(ctx, false, found...)
	if err != nil {
		// Named, so that they are not lost: queued unchecked, an
		// added path of anyone's could go up.
		e.errorf("checking the new paths: %v; none of the %d queued (push those to keep with `cachix-filter-hook push`): %s", err, len(found), firstOf(found, maxNamed))
		return status
	}
	// A content-addressed path with a deriver and no signature is a
	// fixed-output build, or another user's import claiming one: only
	// nix path-info says which (one more call, only for such paths).
	// Unanswered, they stay counted as added.
	var claimed []string
	for _, s := range found {
		if info := infos[s]; info.Valid && info.Added() && info.ContentAddressed() && info.Deriver != "" {
			claimed = append(claimed, s)
		}
	}
	if len(claimed) > 0 {
		built, err := nixstore.Nix{BinDir: c.Nix.BinDir}.BuiltHere(ctx, claimed)
		if err != nil && !o.quiet {
			e.errorf("warning: asking Nix which content-addressed paths were built here: %v", err)
		}
		for s, b := range built {
			if info := infos[s]; b {
				info.Ultimate = true
				infos[s] = info
			}
		}
	}
	var paths []storepath.Path
	var added []string
	for _, s := range found {
		info := infos[s]
		if !info.Valid {
			continue
		}
		if info.Added() && !o.includeAdded {
			added = append(added, s)
			continue
		}
		if p, err := storepath.Parse(storeDir, s); err == nil {
			paths = append(paths, p)
		}
	}
	if len(added) > 0 && !o.quiet {
		e.errorf("left out %d %s added to the store while COMMAND ran, neither built nor substituted (nix-store --add, builtins.path; by anyone): %s; --include-added queues them", len(added), plural(len(added), "path"), firstOf(added, maxNamed))
	}
	if len(paths) == 0 {
		// After "left out N added paths", or the warning that some
		// may have been missed, not "no new store paths".
		if !o.quiet && len(added) == 0 && !overflow {
			e.errorf("no new store paths")
		}
		return status
	}
	// A package list built meanwhile stands for what it names, as in
	// the hook, and, as push does, Nix is asked whether it depends on
	// each (a path it names only as text is not queued); the closure
	// rule's verdict before queueing, as push applies it.
	// Interrupted or not (a build stopped with Ctrl-C keeps what it
	// built), what is queued is decided by all the rules: Nix is asked
	// without the interrupt, each call bounded as always.
	qe := *e
	qe.ctx = context.WithoutCancel(e.ctx)
	gather := pathfacts.New(c)
	lists, _ := qe.findLists(gather, paths, true, true)
	paths = lists.Paths
	closures := qe.closureFacts(c, gather, paths)
	facts := qe.gatherFactsWith(gather, c, paths)
	sel := hook.SelectFinal(c, paths, policy.WithListings(func(s string) *policy.Facts { return facts[s] }, lists.Listed), closures)
	sel.UseLists(lists)
	start := time.Now()
	var follow *history.Follower
	if o.wait {
		// From before queueing: a running worker may push the pairs
		// before the wait begins.
		follow = history.Follow(c.Queue.Dir)
	}
	if len(sel.Pairs) > 0 {
		if err := hook.Enqueue(c, &sel, false); err != nil {
			// Named, as when Nix cannot check them: nothing else
			// knows which paths the command made.
			var names []string
			seen := map[string]bool{}
			if len(sel.Pairs) > 0 { // what was queued all the same
				e.errorf("%s", sel.Summary())
			}
			named := sel.Failed
			if len(named) == 0 {
				named = sel.Pairs // queued, but no worker started
			}
			for _, pr := range named {
				if s := pr.Path.String(); !seen[s] {
					seen[s] = true
					names = append(names, s)
				}
			}
			e.errorf("%v; the %s: %s", err, plural(len(names), "path"), firstOf(names, maxNamed))
			return status
		}
	}
	if !o.quiet || len(sel.Pairs) == 0 {
		e.errorf("%s", sel.Summary())
	}
	if len(sel.Pairs) == 0 {
		return status
	}
	if o.wait {
		e.waitPushed(c, sel.Pairs, nil, start, follow, o.timeout, o.quiet)
	}
	return status
}

// inForeground reports whether we run in the foreground process group of
// our controlling terminal, where the terminal's SIGINT reaches our whole
// group.
func inForeground() bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal
	}
	defer tty.Close()
	pgrp, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == syscall.Getpgrp()
}

// flushSignals returns once every signal of ss already received has been
// handed to each channel that listens for it. Go hands one signal to
// the context's channel and to sigs in turn: the context may be done
// before sigs has it, and a signal sent after we listened would then be
// taken for one sent before (stopped with SIGTERM, then passed on as
// itself). Stop waits for a delivery in flight.
func flushSignals(ss []os.Signal) {
	if len(ss) > 0 {
		c := make(chan os.Signal, 1)
		signal.Notify(c, ss...)
		signal.Stop(c)
	}
}

// maxNamed bounds the paths a message names: a command may add up to a
// million (storewatch's bound).
const maxNamed = 1000

// firstOf joins the first n of paths, and says how many more there are.
func firstOf(paths []string, n int) string {
	if len(paths) <= n {
		return strings.Join(paths, " ")
	}
	return fmt.Sprintf("%s … and %d more", strings.Join(paths[:n], " "), len(paths)-n)
}

// runCommand runs argv with our standard streams and returns its exit
// status (128+signal when a signal ended it). SIGINT, SIGTERM and SIGHUP
// sent to us are passed on, each as it came, and we wait for it to exit;
// one that came before we listened (while the config loaded) leaves it
// not started, and stopped true.
func (e *env) runCommand(argv []string) (int, bool) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	// Before the start, so that none sent meanwhile is missed.
	sigs := make(chan os.Signal, 4)
	ss := stopSignals()
	if !signal.Ignored(syscall.SIGHUP) {
		ss = append(ss, syscall.SIGHUP)
	}
	if len(ss) > 0 {
		signal.Notify(sigs, ss...)
		defer signal.Stop(sigs)
	}
	if e.ctx.Err() != nil {
		flushSignals(ss)
	}
	if e.ctx.Err() != nil && len(sigs) == 0 {
		// Interrupted before we listened: which signal came is not
		// known here, and a command started only to be stopped (with
		// another signal) may leave half its work.
		e.errorf("%v before %s started: not running it", context.Cause(e.ctx), argv[0])
		return 1, true
	}
	if err := cmd.Start(); err != nil {
		e.errorf("running %s: %v", argv[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127, false
		}
		return 126, false
	}
	if e.ctx.Err() != nil {
		flushSignals(ss)
	}
	if e.ctx.Err() != nil && len(sigs) == 0 {
		// Interrupted before we listened, the context not yet done
		// when we looked above: stopped all the same.
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	// Those that came before the start are passed on, a Ctrl-C at the
	// terminal included: it could not reach COMMAND itself.
	for range len(sigs) {
		_ = cmd.Process.Signal(<-sigs)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case sig := <-sigs:
			// A Ctrl-C at the terminal whose foreground we share
			// reaches COMMAND itself, which is in our process group:
			// passed on too, it would come twice (a second SIGINT
			// makes Nix stop at once). Asked as it comes: job control
			// (fg, bg) moves us in and out of the foreground.
			if sig == os.Interrupt && inForeground() {
				continue
			}
			_ = cmd.Process.Signal(sig)
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), false
		}
		return ee.ExitCode(), false
	}
	if err != nil {
		e.errorf("running %s: %v", argv[0], err)
		return 1, false
	}
	return 0, false
}
