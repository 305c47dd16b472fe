package worker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
)

// What a Nix process behind queued entries (Entry.Session: the
// nix-build, or the daemon's connection, that ran the hook) may still
// build. plan asks it of the process of each entry it would hold back:
//   - done: the process ended, or every output it set out to build is
//     valid: no more of its builds will come, so its paths go at once,
//     beside a running push if need be. The last path of a burst is then
//     on its way as its hook returns, not when nix-build exits some 60 ms
//     later (a timeline of 100-build loops, issue 22).
//   - going: outputs it set out to build are not valid yet: more of its
//     paths are coming, which the next push can carry.
//   - unknown: no way to tell (no temporary roots to read: another kind
//     of store, not a Nix process; Nix did not answer). The worker then
//     waits for the process to end, as it did before it read roots.
type buildState uint8

const (
	buildUnknown buildState = iota
	buildGoing
	buildDone
)

// builds follows the temporary roots of the Nix processes plan asks
// about (see nixstore.ReadTempRoots). Each process's file is read from
// where the last read ended, and each root is asked about until Nix says
// it is valid, in file order and a chunk at a time: a round asks one
// chunk of what is still to come, whatever the size of the build, and
// at most maxChunks. The .drv files among the roots (a whole system's
// evaluation adds some 10,000) are valid as soon as they are written, and
// are not asked about.
type builds struct {
	dir string
	// valid tells which of paths are valid (nixstore.Session.PathInfos,
	// not recursive).
	valid func(ctx context.Context, paths []string) (map[string]bool, error)
	procs map[int32]*procRoots
	// busy is the round (plan's now) in which the session was found
	// busy: the round's other processes are not asked, each would wait
	// validTimeout for it too.
	busy time.Time
}

type procRoots struct {
	off   int64
	open  []string        // roots not yet seen valid, in file order
	in    map[string]bool // open's roots (Nix may add one twice)
	seen  time.Time
	stuck bool // unreadable, too many, or Nix did not answer: unknown from now on
}

const (
	// validChunk is how many roots one question asks Nix about, and
	// maxChunks how many questions a round asks at most: past them,
	// the process counts as still building until the next round.
	validChunk = 256
	maxChunks  = 8
	// maxOpenRoots bounds the roots followed for one process.
	maxOpenRoots = 100_000
	// validTimeout bounds a round's question: plan waits for it.
	validTimeout = time.Second
	// forgetRoots is how long a process not asked about is remembered.
	forgetRoots = time.Minute
)

func newBuilds(valid func(ctx context.Context, paths []string) (map[string]bool, error)) *builds {
	return &builds{dir: nixstore.TempRootsDir(), valid: valid, procs: map[int32]*procRoots{}}
}

// state says whether the live Nix process pid has builds left.
func (b *builds) state(pid int32, now time.Time) buildState {
	pr := b.procs[pid]
	if pr == nil {
		pr = &procRoots{in: map[string]bool{}}
		b.procs[pid] = pr
	}
	pr.seen = now
	if pr.stuck {
		return buildUnknown
	}
	roots, next, err := nixstore.ReadTempRoots(b.dir, pid, pr.off)
	if err != nil {
		pr.stuck = true
		return buildUnknown
	}
	if next == 0 {
		// An empty file: nothing set out yet (or not a Nix process).
		return buildUnknown
	}
	pr.off = next
	for _, r := range roots {
		if !strings.HasSuffix(r, ".drv") && !pr.in[r] {
			pr.in[r] = true
			pr.open = append(pr.open, r)
		}
	}
	if len(pr.open) > maxOpenRoots {
		pr.stuck, pr.open, pr.in = true, nil, nil
		return buildUnknown
	}
	for range maxChunks {
		if len(pr.open) == 0 {
			return buildDone
		}
		if b.busy.Equal(now) {
			return buildGoing
		}
		chunk := pr.open[:min(validChunk, len(pr.open))]
		ctx, cancel := context.WithTimeout(context.Background(), validTimeout)
		ok, err := b.valid(ctx, chunk)
		cancel()
		if errors.Is(err, nixstore.ErrSessionBusy) {
			// Not asked: a batch's question held the session for the
			// second (a big closure). Still building until the next
			// round, as past maxChunks; not unknown for good.
			b.busy = now
			return buildGoing
		}
		if err != nil {
			// Not asked again: a Nix that hangs would hold every
			// round for validTimeout.
			pr.stuck = true
			return buildUnknown
		}
		left := chunk[:0]
		for _, p := range chunk {
			if ok[p] {
				delete(pr.in, p)
			} else {
				left = append(left, p)
			}
		}
		pr.open = append(left, pr.open[len(chunk):]...)
		if len(left) > 0 {
			return buildGoing
		}
	}
	if len(pr.open) == 0 {
		return buildDone
	}
	return buildGoing
}

// forget drops what is known of processes not asked about for a while
// (ended ones, mostly).
func (b *builds) forget(now time.Time) {
	for pid, pr := range b.procs {
		if now.Sub(pr.seen) > forgetRoots {
			delete(b.procs, pid)
		}
	}
}
