package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
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
	nixErr   error // why nix --version failed, if it did
}

func (d *doctor) add(name, level, msg, fix string) {
	d.checks = append(d.checks, check{Name: name, Level: level, Message: msg, Fix: fix})
}

func runDoctor(e *env) int {
	fs := e.flags("doctor", "[--json]", "Check that everything the hook needs is in place: the post-build-hook Nix\nuses, Nix's version and its known hook bugs, the config, the token,\ncachix as nix-daemon finds it, the queue, the worker, and whether you are a\ntrusted user. One line per check: ok, warning or problem, with the fix.\nExit 1 when there is a problem.")
	asJSON := fs.Bool("json", false, "print as JSON")
	if st, ok := e.parse(fs); !ok {
		return st
	}
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
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
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
			fmt.Fprintln(e.stdout, line)
		}
	}
	if problems > 0 {
		return 1
	}
	return 0
}

// nixOutput runs nix with args, bounded in time and output.
func (d *doctor) nixOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	cmd := d.nix.Command(ctx, args...)
	var out, stderr limitedBuffer
	out.max, stderr.max = 1<<20, 4<<10
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s %s: %w: %s", cmd.Path, strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("%s %s: %w", cmd.Path, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var nixVersionRe = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// checkNix reports Nix's version and the hook bugs it has.
func (d *doctor) checkNix() {
	out, err := d.nixOutput("--version")
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
	m := nixVersionRe.FindStringSubmatch(version)
	if m == nil {
		d.add("nix", checkWarning, fmt.Sprintf("cannot read the version from %q", version), "")
		return
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	patch, _ := strconv.Atoi(m[3])
	level, msg, fix := nixHookBugs(major, minor, patch)
	d.add("nix", level, msg, fix)
}

// nixHookBugs names the post-build-hook bugs of a Nix version. The hook
// lives with both (it reads DRV_PATH when OUT_PATHS is empty), so they
// are warnings.
func nixHookBugs(major, minor, patch int) (level, msg, fix string) {
	v := fmt.Sprintf("%d.%d.%d", major, minor, patch)
	switch {
	case major == 2 && minor == 8 && patch == 0:
		return checkWarning, "Nix 2.8.0 passes OUT_PATHS empty to the hook (NixOS/nix#6446); the hook reads the outputs from DRV_PATH instead, which costs a little per build", "upgrade Nix to 2.8.1 or later"
	case major == 2 && (minor == 30 || minor == 31 || (minor == 32 && patch < 3)):
		return checkWarning, "Nix " + v + " passes OUT_PATHS empty on --check and --rebuild builds (NixOS/nix#14287); the hook reads the outputs from DRV_PATH instead", "upgrade Nix to 2.32.3, or 2.33 or later"
	}
	return checkOK, "Nix " + v + ", no known post-build-hook bug", ""
}

// settings reads Nix's effective settings: `nix config show` on newer
// Nix, `nix show-config` on older.
func (d *doctor) readSettings() error {
	if d.settings != nil {
		return nil
	}
	out, err := d.nixOutput("config", "show")
	if err != nil {
		var err2 error
		if out, err2 = d.nixOutput("show-config"); err2 != nil {
			return err2
		}
	}
	d.settings = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " = "); ok {
			d.settings[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return nil
}

// checkHook compares the post-build-hook Nix uses with this program.
func (d *doctor) checkHook() {
	const conf = "add `post-build-hook = %s` to /etc/nix/nix.conf (as root), then restart nix-daemon"
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
		d.add("post-build-hook", checkProblem, fmt.Sprintf("%s is not an executable file (%v): every build that runs the hook fails", hook, errOr(err, "not executable")), "install it there, or remove the post-build-hook line from nix.conf and restart nix-daemon")
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
		return
	}
	d.add("post-build-hook", checkWarning, fmt.Sprintf("%s, not this program (%s)", hook, self), "if that is another copy or a wrapper, make sure it runs cachix-filter-hook; else "+fmt.Sprintf(conf, self))
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
		d.add("config", checkProblem, oneLine(err.Error()), "correct the file named above; `cachix-filter-hook validate` prints every problem")
		return
	}
	d.add("config", checkOK, configName(d.cfg.File)+" is valid", "")
	for _, w := range d.cfg.Warnings {
		d.add("config", checkWarning, w, "")
	}
}

// checkToken checks that cachix targets have a token to push with. The
// token itself is never printed.
func (d *doctor) checkToken() {
	if !d.anyCachix() {
		return
	}
	if d.cfg.Cachix.AuthTokenFile != "" {
		return // checkUsed reads it, as validate does
	}
	if os.Getenv("CACHIX_AUTH_TOKEN") != "" {
		d.add("token", checkWarning, "no cachix.auth_token_file; CACHIX_AUTH_TOKEN is set here, but nix-daemon's hook does not see your environment", "set cachix.auth_token_file in hook.conf")
		return
	}
	home := os.Getenv("HOME")
	dhall := filepath.Join(home, ".config", "cachix", "cachix.dhall")
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		dhall = filepath.Join(x, "cachix", "cachix.dhall")
	}
	if _, err := os.Stat(dhall); err == nil {
		d.add("token", checkWarning, "no cachix.auth_token_file; cachix will read "+dhall+" if the worker runs with this HOME", "set cachix.auth_token_file in hook.conf")
		return
	}
	d.add("token", checkProblem, "no auth token: cachix.auth_token_file is not set, CACHIX_AUTH_TOKEN is not set and there is no "+dhall, "write the token to a file (chmod 600) and set cachix.auth_token_file in hook.conf")
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
	path, where := os.Getenv("PATH"), "your PATH"
	dm := findDaemon("/proc", nixstore.Nix{BinDir: d.cfg.Nix.BinDir})
	switch {
	case dm.env != nil:
		path, where = dm.env["PATH"], fmt.Sprintf("nix-daemon's PATH (pid %d)", dm.pid)
	case dm.pid > 0:
		where = fmt.Sprintf("your PATH (cannot read nix-daemon's, pid %d: run doctor as root)", dm.pid)
	case len(dm.ignored) > 0:
		where = fmt.Sprintf("your PATH (no nix-daemon of the Nix in use runs; ignored: %s)", strings.Join(dm.ignored, "; "))
	}
	for _, u := range checkUsed(d.cfg, path, where) {
		if u.err != nil {
			d.add(u.check, checkProblem, oneLine(u.err.Error()), u.fix)
		} else {
			d.add(u.check, checkOK, u.ok, "")
		}
	}
}

// daemon is what findDaemon found: the nix-daemon's pid (0: none), its
// environment (nil: unreadable), and the processes named nix-daemon it
// did not take for it, each with why.
type daemon struct {
	pid     int
	env     map[string]string
	ignored []string
}

// findDaemon finds the running nix-daemon of the Nix in use and reads its
// environment (root only, or the daemon's own user), in the process table
// at proc. Its name proves nothing (any user can start a program called
// nix-daemon, with any PATH): only a process run by root whose executable
// is the Nix in use counts. The listening daemon is the oldest; its
// children serve clients and inherit the same environment. A process
// that exits during the scan is skipped: what is gone is not a
// permission problem.
func findDaemon(proc string, nix nixstore.Nix) daemon {
	var dm daemon
	want, wantErr := os.Stat(nix.Bin("nix-daemon"))
	dirs, _ := os.ReadDir(proc)
	var pids []int
	for _, de := range dirs {
		n, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(proc, de.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "nix-daemon" || otherRoot(dir) {
			continue
		}
		uid, err := procUID(dir)
		if err != nil {
			continue // gone
		}
		if uid != 0 {
			dm.ignored = append(dm.ignored, fmt.Sprintf("pid %d runs as %s, not root", n, trust.OwnerName(uid)))
			continue
		}
		exe, err := os.Stat(filepath.Join(dir, "exe"))
		switch {
		case errors.Is(err, fs.ErrPermission):
			// Not root: root's processes' executables cannot be
			// looked at. Its environment cannot be read either:
			// the caller says to run doctor as root.
		case err != nil:
			continue // gone
		case wantErr != nil || !os.SameFile(exe, want):
			target, _ := os.Readlink(filepath.Join(dir, "exe"))
			dm.ignored = append(dm.ignored, fmt.Sprintf("pid %d runs %s, not the Nix in use (%s)", n, target, nix.Bin("nix-daemon")))
			continue
		}
		pids = append(pids, n)
	}
	sort.Ints(pids)
	for _, pid := range pids {
		data, err := readBounded(filepath.Join(proc, strconv.Itoa(pid), "environ"), 1<<20)
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			continue // gone since
		}
		if _, serr := os.Stat(filepath.Join(proc, strconv.Itoa(pid), "exe")); err == nil && serr != nil && !errors.Is(serr, fs.ErrPermission) {
			continue // exited as it was read (a zombie has no environment)
		}
		dm.pid = pid
		if err != nil {
			return dm
		}
		dm.env = map[string]string{}
		for _, kv := range bytes.Split(data, []byte{0}) {
			if k, v, found := strings.Cut(string(kv), "="); found {
				dm.env[k] = v
			}
		}
		return dm
	}
	return dm
}

// procUID is the real user id a process runs as, from its status file.
func procUID(dir string) (uint32, error) {
	data, err := readBounded(filepath.Join(dir, "status"), 64<<10)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			real, err1 := strconv.ParseUint(f[0], 10, 32)
			eff, err2 := strconv.ParseUint(f[1], 10, 32)
			if err1 != nil || err2 != nil {
				break
			}
			return uint32(max(real, eff)), nil
		}
	}
	return 0, fmt.Errorf("%s/status: no Uid line", dir)
}

// otherRoot reports whether a process runs in a chroot or container (and
// so serves another store); when that cannot be read (not root), it is
// taken to be ours.
func otherRoot(dir string) bool {
	fp, err1 := os.Stat(filepath.Join(dir, "root"))
	fr, err2 := os.Stat("/")
	return err1 == nil && err2 == nil && !os.SameFile(fp, fr)
}

func readBounded(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// checkQueue checks the queue directory and the worker.
func (d *doctor) checkQueue() {
	dir := d.cfg.Queue.Dir
	// The very check the hook and the worker apply: a directory doctor
	// passed and the hook refused would queue nothing, silently.
	if err := queue.CheckDir(dir); err != nil {
		d.add("queue", checkProblem, "the hook refuses it and queues nothing: "+oneLine(err.Error()), queueDirFix(dir, err))
		return
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		if err := syscall.Access(parent, 2 /* W_OK */); errors.Is(err, syscall.EROFS) {
			d.add("queue", checkProblem, fmt.Sprintf("%s does not exist, and the file system holding %s is read-only: the hook cannot create it, and queues nothing", dir, parent), readOnlyFix(dir))
			return
		}
		d.add("queue", checkOK, dir+" does not exist yet; the first hook creates it", "")
		return
	}
	// CheckDir accepts a directory of one's own that one cannot write
	// into (mode 0500, or a read-only mount), which Add then fails on.
	for _, sub := range []string{"", "entries", "tmp"} {
		p := filepath.Join(dir, sub)
		if _, err := os.Lstat(p); err != nil && sub != "" {
			continue
		}
		if err := syscall.Access(p, 2 /* W_OK */); err != nil {
			if errors.Is(err, syscall.EROFS) {
				// No mode fixes a read-only mount.
				d.add("queue", checkProblem, fmt.Sprintf("%s is on a read-only file system: the hook queues nothing", p), readOnlyFix(dir))
				return
			}
			d.add("queue", checkProblem, fmt.Sprintf("%s is not writable by %s: %v", p, currentUser(), err), "chmod 700 "+p)
			return
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
	switch {
	case failing > 0:
		d.add("worker", checkProblem, fmt.Sprintf("%d entries failing; last: %s", failing, lastErr), "fix the cause (`cachix-filter-hook status`, `log`, "+d.cfg.Log.File+"), then `cachix-filter-hook retry`")
	case st.WorkerRunning:
		d.add("worker", checkOK, "running", "")
	case pushable > 0:
		d.add("worker", checkProblem, fmt.Sprintf("stale: %d entries queued and no worker running", pushable), "`cachix-filter-hook wait` starts one and waits; see "+d.cfg.Log.File+" for why the last one stopped")
	default:
		d.add("worker", checkOK, "not running, nothing to push (the hook starts one when needed)", "")
	}
	for _, u := range slices.Sorted(maps.Keys(st.SlowUpstreams)) {
		d.add("upstream", checkWarning, fmt.Sprintf("%s is slow: %s (at %s); the paths it did not answer for were pushed", u, st.SlowUpstreams[u].Why, st.SlowUpstreams[u].Time.Local().Format(time.RFC3339)),
			"check the URL and the network (`curl -I "+u+"/nix-cache-info`), or raise upstream_deadline")
	}
	if dropped > 0 {
		d.add("dropped", checkWarning, fmt.Sprintf("%d entries were dropped (closure_deny, garbage-collected)", dropped), "`cachix-filter-hook log` says why; `cachix-filter-hook forget --dropped` clears them")
	}
}

// readOnlyFix is the fix for a queue directory on a read-only file system
// (an image, a read-only /var in a container).
func readOnlyFix(dir string) string {
	return "set queue.dir in hook.conf to a directory on a writable file system (such as /var/cache/cachix-filter-hook), or remount the one holding " + dir + " read-write"
}

// queueDirFix says how to mend the queue directory CheckDir refused, after
// err.
func queueDirFix(dir string, err error) string {
	var te *trust.Error
	if errors.As(err, &te) {
		return te.Fix + ", or set queue.dir in hook.conf"
	}
	var de *queue.DirError
	if !errors.As(err, &de) {
		return "set queue.dir in hook.conf"
	}
	bad := de.Dir
	fi, lerr := os.Lstat(bad)
	if lerr != nil {
		return "set queue.dir in hook.conf"
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	me := uint32(os.Geteuid())
	// Below the queue directory only the hook and the worker make
	// anything: whatever fails there was made by someone else.
	if bad != dir {
		return fmt.Sprintf("look inside %s for entries you did not queue, then remove %s (rm -rf %s); the hook makes it anew", dir, bad, bad)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(bad)
		return fmt.Sprintf("set queue.dir in hook.conf to a real directory (this link points to %s), or remove the link (rm %s) and the hook makes the directory anew", target, bad)
	case !fi.IsDir():
		return fmt.Sprintf("remove it (rm %s), or set queue.dir in hook.conf", bad)
	case st != nil && st.Uid != me && st.Uid == 0:
		// The usual case of a user running doctor without sudo: under
		// nix-daemon the hook runs as root and the queue is root's.
		return "if the hook runs as root (it does under nix-daemon), run doctor as root: sudo cachix-filter-hook doctor; else set queue.dir in hook.conf to a directory of your own"
	case st != nil && st.Uid != me:
		// chown alone would adopt whatever its owner put there.
		return fmt.Sprintf("look inside for entries you did not queue, then remove it (rm -rf %s); the hook makes it anew", bad)
	case fi.Mode().Perm()&0o022 != 0:
		return "look inside for entries you did not queue (others could write there), then chmod 700 " + bad
	}
	return "chmod 700 " + bad
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Geteuid())
}
