package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// The queue directory decides what root pushes and which files root
// writes (entries, worker.log, state.json): it must be the worker's own.
// Anyone else who could create it first, or write in it, could plant an
// entry or point a log file at root's files. Checked on every Open, so the
// hook queues nothing into, and the worker refuses, a directory that
// fails.

// mkdirPrivate creates dir (mode 0700) if missing and checks that it is
// the running user's own: a directory, not a symlink, owned by the
// running user, and for the queue directory itself (top), with no access
// for group or others. Below a private top, modes do not matter.
func mkdirPrivate(dir string, top bool) error {
	made := os.Mkdir(dir, unsyncedMode)
	if made != nil && !errors.Is(made, fs.ErrExist) {
		return fmt.Errorf("creating queue directory: %w", made)
	}
	fi, err := checkPrivate(dir, top)
	if err != nil {
		return err
	}
	above := unsyncedMode // a subdirectory's parent is the queue directory
	if top {
		above = parentMark
	}
	return syncMade(dir, fi, made == nil, unsyncedMode, above)
}

// unsyncedMode marks a directory made whose name may not be durable yet:
// made so (mkdir honours the sticky bit, which the umask leaves), it is
// 0700 once its parent was synced. Another process that finds it so
// (made by one not done yet, or whose sync failed, or killed) syncs the
// parent itself before it puts anything in it, or a power failure could
// lose what it said was queued there with the directory. Found 0700,
// nothing is synced: an fsync per directory of Open costs 0.4-0.8 ms here
// (ext4), three per hook run, against 3.3 ms of the hook's own work.
const unsyncedMode = 0o700 | os.ModeSticky

// parentMark is the unsynced mark of a directory Open made above the
// queue directory. There an admin's directory may be 01700 on purpose,
// and one this code did not make is never its to change: the mark is a
// mode of no use to anyone else (sticky, with only others' execute bit,
// harmless above a private queue directory), so that a directory found
// with it was made here. Under a umask that takes the others' bit off,
// a crash before the sync leaves a directory no later Open recognises:
// left unsynced rather than an admin's changed.
const parentMark = 0o701 | os.ModeSticky

// syncMade makes the name of dir durable if this call made it (made) or
// it has the unsynced mark (mark: unsyncedMode, or parentMark above the
// queue directory; above is its parent's): its parent synced, then the
// mark cleared. Its maker syncs whatever mode it got: a umask or a
// parent's default ACL can take bits off the mark. dir is this
// user's directory (checked by the caller, whose Lstat fi is: the hook's
// path stats each directory once), its parent writable by no one else,
// so the chmod by name reaches it.
func syncMade(dir string, fi fs.FileInfo, made bool, mark, above fs.FileMode) error {
	_, err := finishMade(dir, fi, made, mark, above)
	return err
}

// finishMade is syncMade; left says dir keeps its mark. A directory
// whose marked parent keeps its mark (its chmod failed) keeps its own:
// marks are cleared from the top down, so the queue directory, which
// every Open stats anyway, stays marked while one above it is, and the
// next Open comes back up the chain from it. Nothing else looks above
// the queue directory: a walk up on every Open would cost the hook a
// stat a level on every build for a mark almost never there.
func finishMade(dir string, fi fs.FileInfo, made bool, mark, above fs.FileMode) (left bool, err error) {
	if !made && !marked(fi, mark) {
		return false, nil
	}
	// Made in a directory still marked (a parent Open made, whose sync
	// failed or was cut by a crash): that one is synced first, as no
	// later Open, finding it there, would look at it again.
	parent := filepath.Dir(dir)
	parentLeft := false
	if pfi, err := lstat(parent); err == nil && parent != dir && marked(pfi, above) && ownedByMe(pfi) {
		if parentLeft, err = finishMade(parent, pfi, false, above, parentMark); err != nil {
			return true, err
		}
	}
	if err := syncDir(parent); err != nil {
		return true, err // still marked: synced by the next call
	}
	if parentLeft && marked(fi, mark) {
		return true, nil
	}
	// Durable now: a mark that cannot be cleared costs only the next
	// Open's fsync, and failing here would have the hook queue nothing.
	return chmod(dir, cleared(fi)) != nil && marked(fi, mark), nil
}

// cleared is the mode of a directory once its mark goes: 0700, with the
// setgid bit it inherited from a setgid parent (an admin's group
// directory) kept, since only the mark is this code's to take off.
func cleared(fi fs.FileInfo) fs.FileMode {
	return 0o700 | fi.Mode()&fs.ModeSetgid
}

// lstat is os.Lstat; the tests count the calls.
var lstat = os.Lstat

// chmod is os.Chmod; the tests make it fail.
var chmod = os.Chmod

// marked reports whether fi is a directory with the unsynced mark mark.
func marked(fi fs.FileInfo, mark fs.FileMode) bool {
	return fi.IsDir() && fi.Mode()&(fs.ModeType|fs.ModeSticky|fs.ModePerm) == fs.ModeDir|mark
}

// ownedByMe reports whether fi is the running user's.
func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// checkPrivate is mkdirPrivate's check; it returns what it found.
func checkPrivate(dir string, top bool) (fs.FileInfo, error) {
	fi, err := lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("queue directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi, nil
	}
	me := os.Geteuid()
	var problem string
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		problem = "it is a symbolic link"
	case !fi.IsDir():
		problem = "it is not a directory"
	case int(st.Uid) != me:
		problem = "it is owned by " + trust.OwnerName(st.Uid) + ", not " + trust.OwnerName(uint32(me))
	case top && fi.Mode().Perm()&0o077 != 0:
		problem = "group or others have access to it"
	default:
		return fi, nil
	}
	if st.Uid == 0 && me != 0 && fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
		// Root's queue, looked at by a user without sudo (the hook runs
		// as root under nix-daemon): not planted, and not to be removed.
		return nil, fmt.Errorf("refusing queue directory %s: %s (owner %s, mode %04o): it is root's; run this command as root (sudo), or set queue.dir in hook.conf to a directory of your own",
			dir, problem, trust.OwnerName(st.Uid), fi.Mode().Perm())
	}
	return nil, fmt.Errorf("refusing queue directory %s: %s (owner %s, mode %04o); it must be this user's own, mode 0700: someone else may have made it to plant entries; look inside, then remove it (rm -rf %s) and it is made anew",
		dir, problem, trust.OwnerName(st.Uid), fi.Mode().Perm(), dir)
}
