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
	made := os.Mkdir(dir, 0o700)
	if made != nil && !errors.Is(made, fs.ErrExist) {
		return fmt.Errorf("creating queue directory: %w", made)
	}
	if err := checkPrivate(dir, top); err != nil {
		return err
	}
	if made == nil {
		// Made now: its name is durable before what goes in it is said
		// to be (an entry, a pin), or a power failure loses both.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			// Removed (while still empty), so that a later call, which
			// would find it there and not sync, makes it and syncs
			// again.
			os.Remove(dir)
			return err
		}
	}
	return nil
}

func checkPrivate(dir string, top bool) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("queue directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
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
		return nil
	}
	if st.Uid == 0 && me != 0 && fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
		// Root's queue, looked at by a user without sudo (the hook runs
		// as root under nix-daemon): not planted, and not to be removed.
		return fmt.Errorf("refusing queue directory %s: %s (owner %s, mode %04o): it is root's; run this command as root (sudo), or set queue.dir in hook.conf to a directory of your own",
			dir, problem, trust.OwnerName(st.Uid), fi.Mode().Perm())
	}
	return fmt.Errorf("refusing queue directory %s: %s (owner %s, mode %04o); it must be this user's own, mode 0700: someone else may have made it to plant entries; look inside, then remove it (rm -rf %s) and it is made anew",
		dir, problem, trust.OwnerName(st.Uid), fi.Mode().Perm(), dir)
}
