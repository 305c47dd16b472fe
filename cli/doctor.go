package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// Levels of a doctor check.
const (
	checkOK      = "ok"
	checkWarning = "warning"
	checkProblem = "problem"
)

// check is one line of doctor's report.
type check struct {
	Name    string `json:"name"`
	Level   string `json:"level"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// doctor gathers the checks; what one check learns (Nix's settings, the
// config) the next ones use.
type doctor struct {
	e        *env
	ctx      context.Context
	checks   []check
	nix      nixstore.Nix
	settings map[string]string // Nix's effective settings
	cfg      *config.Config
	nixErr   error              // why nix --version failed, if it did
	wenv     *workerEnvironment // the worker's, once found (workerEnv)
}

func (d *doctor) add(name, level, msg, fix string) {
	d.checks = append(d.checks, check{Name: name, Level: level, Message: msg, Fix: fix})
}

func runDoctor(e *env, asJSON bool) int {
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	d := &doctor{e: e, ctx: ctx}
	// The config first, quietly: it says where Nix is.
	d.cfg, _ = config.Load(e.configFlag)
	if d.cfg != nil {
		d.nix = nixstore.Nix{BinDir: d.cfg.Nix.BinDir}
	}
	d.checkNix()
	d.checkHook()
	d.checkTrusted()
	d.checkConfig()
	if d.cfg != nil {
		d.checkToken()
		d.checkUsed()
		d.checkQueue()
	}
	problems := 0
	for _, c := range d.checks {
		if c.Level == checkProblem {
			problems++
		}
	}
	if asJSON {
		enc := jsonEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Checks   []check `json:"checks"`
			Problems int     `json:"problems"`
		}{d.checks, problems})
	} else {
		for _, c := range d.checks {
			line := fmt.Sprintf("%-8s %s: %s", c.Level, c.Name, c.Message)
			if c.Fix != "" {
				line += "; fix: " + c.Fix
			}
			// A message may hold what doctor read from the queue (an
			// entry's last error) or from Nix: escaped, as errorf's.
			fmt.Fprintln(e.stdout, escape.Controls(strings.ReplaceAll(line, "\n", `\x0a`)))
		}
	}
	if problems > 0 {
		return 1
	}
	return 0
}

// checkNix reports Nix's version and the hook bugs it has.
func (d *doctor) checkNix() {
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	out, err := d.nix.Output(ctx, "--version")
	if err != nil {
		d.nixErr = err
		fix := "install Nix, or set nix.bin_dir in hook.conf to the directory holding nix and nix-store"
		if d.nix.BinDir != "" {
			// nix.bin_dir is the only place looked at: PATH does not
			// matter, so installing Nix elsewhere would not help.
			fix = fmt.Sprintf("nix.bin_dir is %s, which has no nix: set it in hook.conf to the directory holding nix and nix-store, or remove it to use PATH", d.nix.BinDir)
		}
		d.add("nix", checkProblem, fmt.Sprintf("cannot run nix: %v", err), fix)
		return
	}
	version := strings.TrimSpace(out)
	v, ok := nixstore.ParseVersion(version)
	if !ok {
		d.add("nix", checkWarning, fmt.Sprintf("cannot read the version from %q", version), "")
		return
	}
	// The hook lives with each known bug: a warning.
	if bug := nixstore.HookBugOf(v); bug != nil {
		d.add("nix", checkWarning, bug.Says, bug.Fix)
		return
	}
	d.add("nix", checkOK, "Nix "+v.String()+", no known post-build-hook bug", "")
}

// readSettings reads Nix's effective settings, once.
func (d *doctor) readSettings() error {
	if d.settings != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	s, err := d.nix.Settings(ctx)
	if err != nil {
		return err
	}
	d.settings = s
	return nil
}

// restartDaemon says when a change of nix.conf needs a restart: only a
// nix-daemon reads it once, at its start.
const restartDaemon = "restart nix-daemon if one runs (multi-user Nix: systemctl restart nix-daemon; single-user Nix reads nix.conf at each command)"

// checkHook compares the post-build-hook Nix uses with this program.
func (d *doctor) checkHook() {
	const conf = "add `post-build-hook = %s` to /etc/nix/nix.conf (as root), then " + restartDaemon
	self, _ := os.Executable()
	if d.nixErr != nil {
		// The nix check above is already a problem, with its fix;
		// repeating its error here would only be noise.
		d.add("post-build-hook", checkWarning, "not checked: nix does not run (see nix above)", "")
		return
	}
	if err := d.readSettings(); err != nil {
		d.add("post-build-hook", checkProblem, fmt.Sprintf("cannot read Nix's settings: %v", err), "")
		return
	}
	hook := d.settings["post-build-hook"]
	if hook == "" {
		d.add("post-build-hook", checkProblem, "not set: Nix runs no hook, nothing is queued after builds", fmt.Sprintf(conf, self)+"; or, without root, run builds under `cachix-filter-hook watch-exec -- nix-build ...`")
		return
	}
	fi, err := os.Stat(hook)
	if err != nil || fi.Mode()&0o111 == 0 || fi.IsDir() {
		d.add("post-build-hook", checkProblem, fmt.Sprintf("%s is not an executable file (%v): every build that runs the hook fails", hook, errOr(err, "not executable")), "install it there, or remove the post-build-hook line from nix.conf and "+restartDaemon)
		return
	}
	if _, err := trust.Check(hook, trust.Program); err != nil {
		d.add("post-build-hook", checkProblem, oneLine(err.Error()), "the hook runs as root for every build: install it owned by root, writable by nobody else")
		return
	}
	if sameFile(hook, self) {
		d.add("post-build-hook", checkOK, hook+" (this program)", "")
		if strings.Contains(os.Getenv("NIX_CONFIG"), "post-build-hook") {
			d.add("post-build-hook", checkWarning, "set through NIX_CONFIG, where Nix passes OUT_PATHS empty (NixOS/nix#5694); the hook falls back to DRV_PATH", "set it in nix.conf instead")
		}
		d.checkDaemonConf()
		return
	}
	d.add("post-build-hook", checkWarning, fmt.Sprintf("%s, not this program (%s)", hook, self), "if that is another copy or a wrapper, make sure it runs cachix-filter-hook; else "+fmt.Sprintf(conf, self))
}

// checkDaemonConf warns when nix.conf changed after the running
// nix-daemon started: the daemon read it once, at its start, and runs the
// hook it found then (none, if the line was added since), whatever nix.conf
// and `nix show-config` now say.
func (d *doctor) checkDaemonConf() {
	dm := nixstore.FindDaemon("/proc", d.nix)
	if dm.Env == nil {
		return
	}
	dir := dm.Env["NIX_CONF_DIR"]
	if dir == "" {
		dir = "/etc/nix"
	}
	conf := filepath.Join(dir, "nix.conf")
	fi, err := os.Stat(conf)
	if err != nil {
		return
	}
	started, ok := processStart(dm.PID)
	// A second's slack: btime is in whole seconds.
	if !ok || !fi.ModTime().After(started.Add(time.Second)) {
		return
	}
	d.add("post-build-hook", checkWarning, fmt.Sprintf("%s changed after nix-daemon (pid %d) started (changed %s, started %s): the daemon runs the post-build-hook it read then, which may be none", conf, dm.PID, fi.ModTime().Local().Format(time.RFC3339), started.Local().Format(time.RFC3339)), restartDaemon)
}

// processStart is when process pid started: its start time in clock ticks
// after boot (/proc/PID/stat, field 22; USER_HZ is 100 on Linux) plus the
// boot time (/proc/stat's btime).
func processStart(pid int) (time.Time, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, false
	}
	// The fields after the command name, which ends at the last ')':
	// state is field 3, starttime field 22.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return time.Time{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(btime, 0).Add(time.Duration(ticks) * (time.Second / 100)), true
		}
	}
	return time.Time{}, false
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// sameFile reports whether two paths name the same file, after symlinks.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// checkTrusted says whether the current user may set post-build-hook
// (and other settings) on the command line.
func (d *doctor) checkTrusted() {
	if d.settings == nil {
		return
	}
	u, err := user.Current()
	if err != nil {
		return
	}
	trusted := os.Geteuid() == 0
	groups := map[string]bool{}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if gr, err := user.LookupGroupId(g); err == nil {
				groups[gr.Name] = true
			}
		}
	}
	for _, t := range strings.Fields(d.settings["trusted-users"]) {
		if t == "*" || t == u.Username || (strings.HasPrefix(t, "@") && groups[t[1:]]) {
			trusted = true
		}
	}
	if trusted {
		d.add("trusted user", checkOK, u.Username+" is a trusted Nix user", "")
		return
	}
	d.add("trusted user", checkWarning, u.Username+" is not a trusted Nix user: Nix silently ignores its --option post-build-hook (NixOS/nix#9790)", "use the post-build-hook root set in nix.conf, or run builds under `cachix-filter-hook watch-exec -- nix-build ...`")
}

func (d *doctor) checkConfig() {
	if d.cfg == nil {
		_, err := config.Load(d.e.configFlag)
		sys := config.SystemFile()
		fix := fmt.Sprintf("write one (see hook.conf.example): %s for the hook Nix runs as root", sys)
		// Root's own file is read only where the machine has none.
		if sp := config.SearchPath(); os.Geteuid() != 0 && len(sp) > 1 && sp[0] != sys {
			fix += fmt.Sprintf(", or %s for your own push and watch-exec", sp[0])
		}
		if file, _ := config.Find(d.e.configFlag); file != "" {
			fix = "correct " + file + "; `cachix-filter-hook validate` prints every problem with its line"
		}
		d.add("config", checkProblem, oneLine(err.Error()), fix)
		return
	}
	d.add("config", checkOK, configName(d.cfg.File)+" is valid", "")
	// A user's own hook.conf, found by the search: what the checks below
	// look at is the user's, not the hook's when Nix builds through
	// nix-daemon, where it runs as root with the machine's file and
	// root's queue.
	if sp := config.SearchPath(); os.Geteuid() != 0 && d.e.configFlag == "" && os.Getenv(config.EnvConfig) == "" && len(sp) > 1 && d.cfg.File == sp[0] {
		d.add("config", checkWarning, fmt.Sprintf("%s is yours, for your push and watch-exec: with multi-user Nix the hook runs as root under nix-daemon, with %s and root's queue, which doctor did not check", sp[0], sp[len(sp)-1]), "run `sudo cachix-filter-hook doctor` to check what the hook uses")
	}
	for _, w := range d.cfg.Warnings {
		d.add("config", checkWarning, w, "")
	}
}

// checkToken checks that cachix targets have a token to push with, in
// what the hook's worker will see (workerEnv), not in doctor's own
// environment. The token itself is never printed.
func (d *doctor) checkToken() {
	if !d.anyCachix() {
		return
	}
	if d.cfg.Cachix.AuthTokenFile != "" {
		return // checkUsed reads it, as validate does
	}
	w := d.workerEnv()
	env := worker.Env(w.env)
	if token, _ := config.LookupEnv(env, "CACHIX_AUTH_TOKEN"); strings.TrimSpace(token) != "" {
		d.add("token", checkOK, "no cachix.auth_token_file; the worker inherits CACHIX_AUTH_TOKEN from "+w.whose, "")
		return
	}
	// Said when it is not the worker's: the worker does not see it.
	here := ""
	if w.daemon && os.Getenv("CACHIX_AUTH_TOKEN") != "" {
		here = " (it is set in doctor's environment, which the worker does not get)"
	}
	// As cachix, run by the worker in /, finds it: push_args' -c too.
	dhall := pusher.CachixConfigFile("/", env, append([]string{"push"}, d.cfg.Cachix.PushArgs...))
	if dhall != "" {
		if _, err := os.Stat(dhall); err == nil {
			d.add("token", checkWarning, "no cachix.auth_token_file; cachix, run by the worker with "+w.whose+", will read "+dhall+", which must hold authToken"+here, "set cachix.auth_token_file in hook.conf")
			return
		}
	}
	missing := "there is no cachix config for it"
	if dhall != "" {
		missing = "there is no " + dhall
	}
	d.add("token", checkProblem, "no auth token: cachix.auth_token_file is not set, the worker, with "+w.whose+", gets no CACHIX_AUTH_TOKEN, and "+missing+here, "write the token to a file (chmod 600) and set cachix.auth_token_file in hook.conf")
}

// workerEnvironment is the environment the hook's worker starts from.
type workerEnvironment struct {
	env    []string // before worker.Env
	path   string   // its PATH
	where  string   // "your PATH", "nix-daemon's PATH (pid N)"
	whose  string   // "your environment", "nix-daemon's environment (pid N)"
	daemon bool     // env is nix-daemon's
}

// workerEnv is the environment the hook's worker will have: nix-daemon's
// when one of the Nix in use runs and doctor can read it (the hook runs
// under it, with its environment, and starts the worker with that), else
// doctor's own, which is the worker's without a daemon.
func (d *doctor) workerEnv() workerEnvironment {
	if d.wenv != nil {
		return *d.wenv
	}
	w := workerEnvironment{env: os.Environ(), path: os.Getenv("PATH"), where: "your PATH", whose: "your environment"}
	dm := nixstore.FindDaemon("/proc", nixstore.Nix{BinDir: d.cfg.Nix.BinDir})
	switch {
	case dm.Env != nil:
		w.path, w.where = dm.Env["PATH"], fmt.Sprintf("nix-daemon's PATH (pid %d)", dm.PID)
		w.whose, w.daemon = fmt.Sprintf("nix-daemon's environment (pid %d)", dm.PID), true
		w.env = make([]string, 0, len(dm.Env))
		for k, v := range dm.Env {
			w.env = append(w.env, k+"="+v)
		}
	case dm.PID > 0 && dm.EnvErr != nil:
		w.where = fmt.Sprintf("your PATH (cannot use nix-daemon's, pid %d: %v)", dm.PID, dm.EnvErr)
		w.whose = fmt.Sprintf("your environment (cannot use nix-daemon's, pid %d, which the hook's worker gets: %v)", dm.PID, dm.EnvErr)
	case dm.PID > 0:
		w.where = fmt.Sprintf("your PATH (cannot read nix-daemon's, pid %d: run doctor as root)", dm.PID)
		w.whose = fmt.Sprintf("your environment (cannot read nix-daemon's, pid %d, which the hook's worker gets: run doctor as root)", dm.PID)
	case len(dm.Ignored) > 0:
		w.where = fmt.Sprintf("your PATH (no nix-daemon of the Nix in use runs; ignored: %s)", strings.Join(dm.Ignored, "; "))
	}
	d.wenv = &w
	return w
}

func (d *doctor) anyCachix() bool {
	for _, t := range d.cfg.Targets {
		if t.Cache != "" {
			return true
		}
	}
	return false
}

// checkUsed checks what the worker will read and run (token file, signing
// keys, cachix, nix.bin_dir) as validate does, but finds cachix.bin as
// the hook's worker would: in nix-daemon's PATH when a daemon runs (the
// hook runs under it), else in ours.
func (d *doctor) checkUsed() {
	// The hook's worker also finds cachix's config in its environment.
	w := d.workerEnv()
	// The daemon's socket where nix-daemon's environment puts it, else
	// where a clean one does: doctor's own is not the worker's.
	var nixEnv []string
	if w.daemon {
		nixEnv = w.env
	}
	for _, u := range checkUsed(d.cfg, w.env, nixEnv, w.path, w.where, "doctor") {
		msg := u.ok
		if u.err != nil {
			msg = u.err.Error()
		}
		if u.place != "" {
			// Where the store was set, as validate says it.
			msg = placedMessage(u)
		}
		if u.err != nil {
			d.add(u.check, checkProblem, oneLine(msg), u.fix)
		} else {
			d.add(u.check, checkOK, msg, "")
		}
	}
}

// checkQueue checks the queue directory and the worker.
func (d *doctor) checkQueue() {
	dir := d.cfg.Queue.Dir
	// The very checks the hook and the worker apply: a directory doctor
	// passed and the hook refused would queue nothing, silently.
	if p := queue.Diagnose(dir); p != nil {
		d.add("queue", checkProblem, p.Msg, p.Fix)
		return
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		d.add("queue", checkOK, dir+" does not exist yet; the first hook creates it", "")
		return
	}
	if d.cfg.Queue.RememberPushed > 0 {
		// The worker refuses it, and the hook queues all the same.
		if p := queue.DiagnoseRecords(dir); p != nil {
			d.add("queue", checkWarning, p.Msg, p.Fix)
		}
	}
	q := &queue.Queue{Dir: dir}
	st, err := collectStatus(d.cfg, q)
	if err != nil {
		d.add("queue", checkProblem, err.Error(), "")
		return
	}
	d.add("queue", checkOK, fmt.Sprintf("%s: %d pending", dir, st.pending()), "")
	if st.Corrupt > 0 {
		d.add("queue", checkWarning, fmt.Sprintf("%d unreadable entries", st.Corrupt), "a worker moves them to corrupt/; `cachix-filter-hook forget --corrupt` deletes them")
	}
	if st.CorruptPins > 0 {
		d.add("queue", checkWarning, fmt.Sprintf("%d unreadable %s in %s/pins, never made", st.CorruptPins, plural(st.CorruptPins, "pin"), dir), "see the worker's log for each; remove it, then `cachix-filter-hook push --pin` again")
	}
	if st.Orphaned > 0 {
		d.add("queue", checkWarning, fmt.Sprintf("%d entries belong to targets no longer in the config", st.Orphaned), "`cachix-filter-hook forget --target NAME` (see `forget --dry-run`)")
	}
	failing, dropped := 0, 0
	var lastErr string
	for _, t := range st.Targets {
		failing += t.Failing
		dropped += t.Dropped
		for _, f := range t.Failures {
			lastErr = fmt.Sprintf("%s -> %s: %s", f.Path, t.Name, oneLine(f.LastError))
		}
	}
	pushable := st.pending() - st.Orphaned
	// Pins are work left too: a pin waits in pins/ after its root's
	// entry has gone (pushed), and only a worker makes it.
	pins, failingPins, dropsFailing := 0, 0, 0
	var lastDrop string
	for _, t := range st.Targets {
		pins += len(t.Pins)
		for _, p := range t.Pins {
			if p.DropError != "" && !p.Waiting {
				// Given up on, its file stuck (state.json's pin_drops):
				// wait counts it failing, status says why.
				dropsFailing++
				lastDrop = fmt.Sprintf("pin %q of %s -> %s: %s", p.Name, p.Path, t.Name, oneLine(p.DropError))
				continue
			}
			// One waiting for its root's push, queued again, is not
			// failing (status says so too): it is tried after it.
			if p.Attempts > 0 && !p.Waiting {
				failingPins++
				if failing == 0 {
					lastErr = fmt.Sprintf("pin %q of %s -> %s: %s", p.Name, p.Path, t.Name, oneLine(p.LastError))
				}
			}
		}
	}
	// And the package lists the hook could not read: what they name is
	// queued only once a worker reads them again.
	lc := listsLeft(q, time.Now())
	if failing+failingPins == 0 && len(lc.failed) > 0 {
		lastErr = lc.failed[0]
	}
	work := fmt.Sprintf("%d entries", pushable)
	if pins > 0 {
		work += fmt.Sprintf(" and %d %s", pins, plural(pins, "pin"))
	}
	if lc.n > 0 {
		work += fmt.Sprintf(" and %d %s to read again", lc.n, plural(lc.n, "package list"))
	}
	switch {
	case failing+failingPins+lc.failing > 0:
		// A pin that keeps failing is work that does not get done, as a
		// failing entry is, even while a worker runs.
		var what []string
		if failing > 0 {
			what = append(what, fmt.Sprintf("%d entries", failing))
		}
		if failingPins > 0 {
			what = append(what, fmt.Sprintf("%d %s", failingPins, plural(failingPins, "pin")))
		}
		if lc.failing > 0 {
			what = append(what, fmt.Sprintf("%d %s (unreadable)", lc.failing, plural(lc.failing, "package list")))
		}
		d.add("worker", checkProblem, fmt.Sprintf("%s failing; last: %s", strings.Join(what, " and "), lastErr), "fix the cause (`cachix-filter-hook status`, `log`, "+d.cfg.Log.File+"), then `cachix-filter-hook retry`")
	case st.WorkerRunning:
		d.add("worker", checkOK, "running", "")
	case st.WorkerStartError != nil:
		se := st.WorkerStartError
		fix := se.Fix
		if fix == "" {
			fix = "fix the cause"
		}
		d.add("worker", checkProblem, fmt.Sprintf("the last worker could not start (%s): %s; %s wait", se.Time.Local().Format(time.RFC3339), oneLine(se.Error), work), fix+", then `cachix-filter-hook wait`")
	case pushable+pins+lc.n > 0:
		d.add("worker", checkProblem, fmt.Sprintf("stale: %s queued and no worker running", work), "`cachix-filter-hook wait` starts one and waits; see "+d.cfg.Log.File+" for why the last one stopped")
	default:
		d.add("worker", checkOK, "not running, nothing to push (the hook starts one when needed)", "")
	}
	if dropsFailing > 0 {
		d.add("pins", checkProblem, fmt.Sprintf("%d %s given up on whose file the worker cannot remove, tried again with back-off; last: %s", dropsFailing, plural(dropsFailing, "pin"), lastDrop),
			fmt.Sprintf("make %s/pins and %s/tmp writable by the worker again (owner, mode, free space, a read-only mount; %s says more); `cachix-filter-hook status` shows each", dir, dir, d.cfg.Log.File))
	}
	if st.PinsAsideError != "" {
		d.add("pins", checkProblem, fmt.Sprintf("the worker cannot look for the pins a failed drop left aside in %s/tmp (retried with back-off): %s", dir, oneLine(st.PinsAsideError)),
			fmt.Sprintf("make %s/tmp or %s/pinasks listable by the worker again (owner, mode, the disk; %s says more): until then a pin asked for again as it was dropped may stay aside, not made", dir, dir, d.cfg.Log.File))
	}
	for _, u := range slices.Sorted(maps.Keys(st.SlowUpstreams)) {
		d.add("upstream", checkWarning, fmt.Sprintf("%s is slow: %s (at %s); the paths it did not answer for were pushed", u, st.SlowUpstreams[u].Why, st.SlowUpstreams[u].Time.Local().Format(time.RFC3339)),
			"check the URL and the network (`curl -I "+u+"/nix-cache-info`), or raise upstream_deadline")
	}
	if dropped > 0 {
		d.add("dropped", checkWarning, fmt.Sprintf("%d entries were dropped (closure_deny, garbage-collected)", dropped), "`cachix-filter-hook log` says why; `cachix-filter-hook forget --dropped` clears them")
	}
}
