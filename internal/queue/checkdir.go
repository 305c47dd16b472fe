package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// DirError is CheckDir's refusal of a directory the queue checks itself
// (the queue directory or a subdirectory); a parent that fails the trust
// rule comes back as a *trust.Error instead.
type DirError struct {
	Dir string // the directory refused
	Err error
}

func (e *DirError) Error() string { return e.Err.Error() }
func (e *DirError) Unwrap() error { return e.Err }

// CheckDir applies, without creating anything, the checks Open, push
// --pin and the worker apply to dir: its parents by the trust rule, dir itself and its
// subdirectories by mkdirPrivate's rule. doctor calls it so that it
// passes exactly the directories the hook and the worker accept. What
// does not exist yet is no error: Open makes it, private.
func CheckDir(dir string) error {
	if err := trust.CheckParents(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("queue directory: %w", err)
		}
		// A missing parent: Open makes it only where others cannot write.
		if err := checkMakeable(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("creating queue directory: %w", err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, entriesDir), filepath.Join(dir, bulkDir), filepath.Join(dir, tmpDir), filepath.Join(dir, corruptDir), filepath.Join(dir, droppedDir), filepath.Join(dir, pinsDir), filepath.Join(dir, pinAsksDir), filepath.Join(dir, listsDir)} {
		_, err := checkPrivate(d, d == dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && d == dir:
			return nil
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return &DirError{Dir: d, Err: err}
		}
	}
	return nil
}

// Problem is why the hook cannot queue in a directory, and how to mend
// it.
type Problem struct {
	Msg, Fix string
}

// Diagnose tells whether the hook can queue in dir, for doctor: CheckDir's
// checks, then what Add needs besides (directories it can write, on a
// writable file system, which CheckDir does not ask: a directory of one's
// own with mode 0500 passes it). nil: it can, or will make dir.
func Diagnose(dir string) *Problem {
	if err := CheckDir(dir); err != nil {
		return &Problem{"the hook refuses it and queues nothing: " + oneLine(err.Error()), dirFix(dir, err)}
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		if err := syscall.Access(parent, 2 /* W_OK */); errors.Is(err, syscall.EROFS) {
			return &Problem{fmt.Sprintf("%s does not exist, and the file system holding %s is read-only: the hook cannot create it, and queues nothing", dir, parent), readOnlyFix(dir)}
		}
		return nil
	}
	for _, sub := range []string{"", entriesDir, bulkDir, tmpDir} {
		p := filepath.Join(dir, sub)
		if _, err := os.Lstat(p); err != nil && sub != "" {
			continue
		}
		if err := syscall.Access(p, 2 /* W_OK */); err != nil {
			if errors.Is(err, syscall.EROFS) {
				// No mode fixes a read-only mount.
				return &Problem{fmt.Sprintf("%s is on a read-only file system: the hook queues nothing", p), readOnlyFix(dir)}
			}
			return &Problem{fmt.Sprintf("%s is not writable by %s: %v", p, currentUser(), err), "chmod 700 " + p}
		}
	}
	return nil
}

// DiagnoseRecords tells whether the worker can record what it pushed in
// dir's pushed/ (package pushed), for doctor: pushed.OpenWrite records
// only in one that is the worker's own and private, as the queue
// directory, since a record decides what is not uploaded. The hook does
// not refuse the queue for it: paths are only pushed again. nil: it can,
// or will make it.
func DiagnoseRecords(dir string) *Problem {
	records := filepath.Join(dir, pushed.Dir)
	_, err := checkPrivate(records, true)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return &Problem{"the worker records no pushed paths, and pushes each again when it is queued again: " + oneLine(err.Error()),
		fmt.Sprintf("remove %s (rm -rf %s): it only records what was pushed, and the worker makes it anew", records, records)}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// readOnlyFix is the fix for a queue directory on a read-only file system
// (an image, a read-only /var in a container).
func readOnlyFix(dir string) string {
	return "set queue.dir in hook.conf to a directory on a writable file system (such as /var/cache/cachix-filter-hook), or remount the one holding " + dir + " read-write"
}

// dirFix says how to mend the queue directory CheckDir refused, after
// err.
func dirFix(dir string, err error) string {
	var te *trust.Error
	if errors.As(err, &te) {
		return te.Fix + ", or set queue.dir in hook.conf"
	}
	var de *DirError
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
