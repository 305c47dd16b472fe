package hook

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Package lists in the hook's line. A list's build queues what it names
// (package pkglist, policy's Listing): the line says so in the list's
// terms, `queued 2 of 2 listed in cachix-packages-dev: openc910-2.3,
// myapp-1.0 -> mycache`; without a target that takes lists it says what
// it ignored and the one line that turns them on.

// outputsOf returns the built paths that are not lists: the outputs the
// sibling scan looks at.
func outputsOf(paths []storepath.Path, found pkglist.Found) []storepath.Path {
	if len(found.Lists) == 0 && len(found.Bad) == 0 {
		return paths
	}
	var out []storepath.Path
	for _, p := range paths {
		if !pkglist.Named(p) {
			out = append(out, p)
		}
	}
	return out
}

// sayBadLists says on the build log each list that could not be used. One
// that could not be read now (pkglist.ErrUnreadable) is built once: the
// hook records it in the queue (queue.AddUnreadList) for the worker to
// read again and queue what it selects, as are those past what one run
// reads (pkglist.ErrTooMany, recordSkipped). It returns the queue when it
// recorded one (a worker must run), nil otherwise.
func sayBadLists(cfg *config.Config, found pkglist.Found, say func(string, ...any)) *queue.Queue {
	var q *queue.Queue
	var qerr error
	open := func() (*queue.Queue, error) {
		if q == nil && qerr == nil {
			q, qerr = queue.Open(cfg.Queue.Dir)
		}
		return q, qerr
	}
	i, recorded := 0, 0
	for _, err := range found.Bad {
		if errors.Is(err, pkglist.ErrTooMany) {
			recorded += recordSkipped(found.Skipped, open, say)
			continue
		}
		if !errors.Is(err, pkglist.ErrUnreadable) || i >= len(found.Unread) {
			say("%v", err)
			continue
		}
		l := found.Unread[i]
		i++
		lq, rerr := open()
		if rerr == nil {
			rerr = lq.AddUnreadList(l, err.Error(), os.Getppid(), time.Now())
		}
		if rerr != nil {
			say("%v; recording it to read again failed, it is lost unless pushed (`cachix-filter-hook push %s` queues it once it can be read): %v", err, l, rerr)
			continue
		}
		recorded++
		say("%v: the worker reads it again and queues what it names", err)
	}
	if recorded == 0 {
		return nil
	}
	return q
}

// maxLeftLists and maxLeftTime bound the lists past what one run reads
// (pkglist.Find's bounds) that the hook records for the worker: each
// record is two fsyncs on the build's path (some 9 ms each on a quiet
// VM disk, BenchmarkRunListsPastTheBound: 64 took 0.55 s, 55 times a
// build of one list; on a busy disk, seconds), and a derivation may have
// any number of outputs named like lists. The time is the sibling
// scan's (scanMaxTime).
const (
	maxLeftLists = 64
	maxLeftTime  = scanMaxTime
)

// recordSkipped records the lists Find left unread past its bounds for
// the worker to read, as an unreadable one, up to maxLeftLists and for
// maxLeftTime, in the queue open gives, and says which were recorded and
// which are left to push by hand. It returns how many it recorded.
func recordSkipped(skipped []storepath.Path, open func() (*queue.Queue, error), say func(string, ...any)) int {
	return recordSkippedUntil(skipped, open, say, time.Now().Add(maxLeftTime))
}

// recordSkippedUntil is recordSkipped with its time bound (a test's):
// past until, it records no more, the first list always.
func recordSkippedUntil(skipped []storepath.Path, open func() (*queue.Queue, error), say func(string, ...any), until time.Time) int {
	var done, lost []string
	var lostPaths []storepath.Path
	var why error
	for i, l := range skipped {
		var rerr error
		switch {
		case i >= maxLeftLists:
			// Not "recorded already": a full lists/, or the time, may
			// have left all of those before unrecorded.
			rerr = fmt.Errorf("beyond the first %d, the most one build records", maxLeftLists)
		case i > 0 && time.Now().After(until):
			rerr = fmt.Errorf("recording took past %s, the most one build spends", maxLeftTime)
		default:
			var q *queue.Queue
			if q, rerr = open(); rerr == nil {
				rerr = q.AddSkippedList(l, fmt.Sprintf("package list %s not read by the hook: %v", l, pkglist.ErrTooMany), os.Getppid(), time.Now())
			}
		}
		if rerr == nil {
			done = append(done, l.Name)
			continue
		}
		// Each reason once: past the time and past the count may both
		// cut the records, and the line must say why of every list.
		if why == nil {
			why = rerr
		} else if !strings.Contains(why.Error(), rerr.Error()) {
			why = fmt.Errorf("%w; %v", why, rerr)
		}
		lost = append(lost, l.Name)
		lostPaths = append(lostPaths, l)
	}
	if len(done) > 0 {
		say("%d package lists not read on the build's path (%v: %d lists or %d listed paths): %s; the worker reads them and queues what they select",
			len(done), pkglist.ErrTooMany, pkglist.MaxLists, pkglist.MaxTotalPaths, summarizeNames(done, 5))
	}
	if len(lost) > 0 {
		fix := "`cachix-filter-hook push " + lostPaths[0].String() + "`"
		if len(lost) > 1 {
			fix += " (and the others, a few at a time)"
		}
		say("%d package lists neither read nor recorded to read again (%v): %s; nothing of them is queued: %s queues what each selects",
			len(lost), why, summarizeNames(lost, 5), fix)
	}
	return len(done)
}

// UseLists names in the line the lists found among the paths, and counts
// the paths they name (also those a caller left out before deciding, as
// push leaves out what was pushed).
func (s *Selection) UseLists(found pkglist.Found) {
	for _, l := range found.Lists {
		s.Lists = append(s.Lists, l.Path.Name)
	}
	if len(found.Listed) > 0 {
		s.Listed = 0
		for _, p := range found.Paths {
			if len(found.Listed[p.String()]) > 0 {
				s.Listed++
			}
		}
	}
}

// head is the line's start, and the notes it brings.
func (s Selection) head() (string, []string) {
	var notes []string
	if len(s.Lists) > 0 && s.Listed == s.Total {
		// Everything decided came from lists: say it in their terms.
		// Up to pkglist.MaxLists names of up to 211 bytes: bounded,
		// as every list the line gives.
		line := fmt.Sprintf("queued %d of %d listed in %s", s.Selected, s.Total, summarizeNames(s.Lists, 5))
		if names := s.queuedNames(); len(names) > 0 {
			line += ": " + summarizeNames(names, 5) + " -> " + strings.Join(s.Targets, ", ")
		}
		return line, notes
	}
	line := fmt.Sprintf("queued %d of %d paths", s.Selected, s.Total)
	if len(s.Targets) > 0 {
		line += " for " + strings.Join(s.Targets, ", ")
	}
	if len(s.Lists) > 0 {
		notes = append(notes, fmt.Sprintf("%d listed in %s", s.Listed, summarizeNames(s.Lists, 5)))
	}
	return line, notes
}

// queuedNames are the names of the paths queued, each once, in order.
func (s Selection) queuedNames() []string {
	var names []string
	seen := map[storepath.Path]bool{}
	for _, p := range s.Pairs {
		if !seen[p.Path] {
			seen[p.Path] = true
			names = append(names, p.Path.Name)
		}
	}
	return names
}

// ignoredNote says what no target took, and how to take it.
func (s Selection) ignoredNote() string {
	how := "add package_lists = true at the top of " + s.conf
	if s.conf == "" {
		how = "set " + config.EnvPrefix + "_PACKAGE_LISTS=true"
	}
	return fmt.Sprintf("ignored %s: no target takes package lists; %s to push what lists name", summarizeNames(s.Ignored, 5), how)
}

func summarizeNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
