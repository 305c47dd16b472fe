package nixstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// Daemon is what FindDaemon found: the nix-daemon's pid (0: none), its
// environment (nil: unreadable, EnvErr saying why when not for want of
// permission), and the processes named nix-daemon it did not take for
// it, each with why.
type Daemon struct {
	PID     int
	Env     map[string]string
	EnvErr  error
	Ignored []string
}

// maxEnviron bounds what is read of nix-daemon's environment. One longer
// is not taken in part: its last variable would be cut, the rest lost.
const maxEnviron = 1 << 20

// FindDaemon finds the running nix-daemon of the Nix in use and reads its
// environment (root only, or the daemon's own user), in the process table
// at proc. Its name proves nothing (any user can start a program called
// nix-daemon, with any PATH): only a process run by root whose executable
// is the Nix in use counts. The listening daemon is the oldest (by start
// time: pids wrap around); its
// children serve clients and inherit the same environment. A process
// that exits during the scan is skipped: what is gone is not a
// permission problem.
func FindDaemon(proc string, nix Nix) Daemon {
	var dm Daemon
	want, wantErr := os.Stat(nix.Bin("nix-daemon"))
	dirs, _ := os.ReadDir(proc)
	var pids []int
	starts := map[int]uint64{}
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
		// Its start time, before what is checked: read again after its
		// environment, it tells whether the pid still names the process
		// checked (a pid is reused once its process has gone).
		start, err := procStart(dir)
		if err != nil {
			continue // gone
		}
		uid, err := procUID(dir)
		if err != nil {
			continue // gone
		}
		if uid != 0 {
			dm.Ignored = append(dm.Ignored, fmt.Sprintf("pid %d runs as %s, not root", n, trust.OwnerName(uid)))
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
			dm.Ignored = append(dm.Ignored, fmt.Sprintf("pid %d runs %s, not the Nix in use (%s)", n, target, nix.Bin("nix-daemon")))
			continue
		}
		pids = append(pids, n)
		starts[n] = start
	}
	// The oldest first, by start time: pids wrap around, and a lower one
	// may be a client's process, forked after the daemon started.
	sort.Slice(pids, func(i, j int) bool {
		a, b := pids[i], pids[j]
		return starts[a] < starts[b] || starts[a] == starts[b] && a < b
	})
	for _, pid := range pids {
		data, err := readBounded(filepath.Join(proc, strconv.Itoa(pid), "environ"), maxEnviron+1)
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			continue // gone since
		}
		if _, serr := os.Stat(filepath.Join(proc, strconv.Itoa(pid), "exe")); err == nil && serr != nil && !errors.Is(serr, fs.ErrPermission) {
			continue // exited as it was read (a zombie has no environment)
		}
		if start, serr := procStart(filepath.Join(proc, strconv.Itoa(pid))); serr != nil || start != starts[pid] {
			continue // another process has its pid now
		}
		dm.PID = pid
		if err != nil {
			return dm
		}
		if len(data) > maxEnviron {
			dm.EnvErr = fmt.Errorf("its environment is over %d bytes", maxEnviron)
			return dm
		}
		dm.Env = map[string]string{}
		for _, kv := range bytes.Split(data, []byte{0}) {
			// The first of duplicates, as the hook gets it: Nix's
			// getEnv keeps the first (as getenv finds it).
			if k, v, found := strings.Cut(string(kv), "="); found {
				if _, dup := dm.Env[k]; !dup {
					dm.Env[k] = v
				}
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

// procStart is a process's start time, in clock ticks after boot: field
// 22 of its stat file, counted after the command name (which may hold
// spaces and parentheses, and ends at the last ')').
func procStart(dir string) (uint64, error) {
	data, err := readBounded(filepath.Join(dir, "stat"), 4096)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 20 {
		return 0, fmt.Errorf("%s/stat: no start time", dir)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/stat: start time: %w", dir, err)
	}
	return start, nil
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
