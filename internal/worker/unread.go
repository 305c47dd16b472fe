package worker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Package lists the hook could not read for a reason of the moment
// (queue.UnreadList): a list is built once, so nothing else would ever
// queue what it names. Each round the worker reads again those due,
// decides what they name as the hook does (policy.DecideAll, with the
// lists' listings), queues that, and removes the record. A list refused
// for good (malformed, not as cachixPackages builds it, gone from the
// store) is no read of the moment: dropped at once, with its reason, as
// one still unreadable after maxListAttempts reads is.

// maxListAttempts bounds the reads of a list that stays unreadable: with
// the back-off (queue.retry_initial doubling to queue.retry_max) it is
// read for hours, then dropped with its last error.
const maxListAttempts = 12

// unreadLists reads again the lists due; left says some wait for a later
// read, the first at next.
func (w *Worker) unreadLists(now time.Time) (left bool, next time.Time) {
	names, err := w.q.UnreadListNames()
	if err != nil {
		w.listsError(err, "listing the package lists to read again")
		return false, time.Time{}
	}
	failed := false
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		seen[n] = true
	}
	for k := range w.listTries {
		if !seen[k] {
			delete(w.listTries, k)
		}
	}
	for _, n := range names {
		u, err := w.q.ReadUnreadList(n)
		switch {
		case errors.Is(err, queue.ErrCorrupt):
			w.log.WithError(err).Error("not a package list to read again, moved to corrupt/")
			if err := w.q.SetAsideUnreadList(n); err != nil {
				w.log.WithError(err).Error("moving it aside")
			}
			continue
		case err != nil:
			// Read again next round.
			w.listsError(err, "reading a package list to read again")
			failed, left = true, true
			continue
		}
		if m, ok := w.listTries[u.Key()]; ok && (m.Attempts > u.Attempts || m.Attempts == u.Attempts && m.NextAttempt.Before(u.NextAttempt)) {
			// Its record could not be rewritten after a failed read,
			// or its back-off was cut below.
			u.Attempts, u.NextAttempt, u.LastError = m.Attempts, m.NextAttempt, m.LastError
		}
		if r := w.cfg.Queue.RetryMax; r > 0 && u.NextAttempt.Sub(now) > r {
			// A wall-clock time from disk (the record's, or its file's:
			// queue.UnreadList), stamped before the clock went back or
			// set ahead by hand: cut to retry_max from now, and kept so,
			// as adopt cuts an entry's; else the list waits unread for
			// as long as the step.
			u.NextAttempt = now.Add(r)
			w.listTries[u.Key()] = *u
		}
		if WaitLeft(u.NextAttempt, now, w.cfg.Queue.RetryMax) > 0 {
			left = true
			if next.IsZero() || u.NextAttempt.Before(next) {
				next = u.NextAttempt
			}
			continue
		}
		if at, again := w.readUnreadList(u, now); again {
			left = true
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	if !failed {
		w.listsFailed = ""
	}
	return left, next
}

// listsError logs err with msg unless it was the last one logged: lists/
// is looked at every round, a second apart.
func (w *Worker) listsError(err error, msg string) {
	if said := msg + ": " + err.Error(); said != w.listsFailed {
		w.listsFailed = said
		w.log.WithError(err).Warn(msg)
	}
}

// readUnreadList reads u's list and queues what it selects; again, with
// the time of the next read, when it is to be read again.
func (w *Worker) readUnreadList(u *queue.UnreadList, now time.Time) (at time.Time, again bool) {
	log := w.log.WithField("list", u.List)
	found := pkglist.FindWith([]storepath.Path{u.Path()}, true, w.readList)
	if len(found.Bad) > 0 {
		if len(found.Unread) == 0 {
			// For good: a store path does not change.
			w.dropUnreadList(log, u, found.Bad[0].Error())
			return time.Time{}, false
		}
		return w.listAgain(log, u, found.Bad[0], now)
	}
	if len(found.Lists) == 0 {
		// No list any more (gone from the store): nothing names it.
		w.dropUnreadList(log, u, fmt.Sprintf("its package list %s is no longer in the store", u.List))
		return time.Time{}, false
	}
	var pairs []queue.Pair
	var skipped []string
	names := map[string][]string{} // per target, the names queued
	for _, v := range policy.DecideAll(w.cfg, found.Paths, policy.WithListings(nil, found.Listed), nil) {
		queued := false
		for _, td := range v.Targets {
			// As the hook queues: the closure rule's verdict is the
			// worker's at push time, with the whole closure.
			if td.Selected || td.Check == policy.CheckClosure {
				pairs = append(pairs, queue.Pair{Target: td.Target, Path: v.Path, Listed: td.Listed})
				names[td.Target] = append(names[td.Target], v.Path.Name)
				queued = true
			}
		}
		if !queued {
			skipped = append(skipped, v.SkipNote())
		}
	}
	if len(pairs) > 0 {
		if _, err := w.q.Add(pairs, now); err != nil {
			return w.listAgain(log, u, fmt.Errorf("queueing what it names: %w", err), now)
		}
	}
	if err := w.q.RemoveUnreadList(u.Key()); err != nil {
		log.WithError(err).Warn("removing the record of a package list read again")
	}
	// By name, as the hook's line would have said it: what will be
	// uploaded, bounded.
	var queued []string
	for _, t := range w.cfg.Targets {
		if ns := names[t.Name]; len(ns) > 0 {
			queued = append(queued, listNames(ns, 5, ", ")+" -> "+t.Name)
		}
	}
	fields := logrus.Fields{"paths": len(found.Paths), "pairs": len(pairs), "queued": "none"}
	if len(queued) > 0 {
		fields["queued"] = escape.Controls(strings.Join(queued, "; "))
	}
	if len(skipped) > 0 {
		fields["skipped"] = escape.Controls(listNames(skipped, 3, "; "))
	}
	log.WithFields(fields).Info("read a package list again and queued what it selects")
	return time.Time{}, false
}

// listNames joins the first n of items with sep, and counts the rest.
func listNames(items []string, n int, sep string) string {
	if len(items) <= n {
		return strings.Join(items, sep)
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], sep), len(items)-n)
}

// listAgain backs u off after a failed read, or drops it past
// maxListAttempts.
func (w *Worker) listAgain(log *logrus.Entry, u *queue.UnreadList, err error, now time.Time) (time.Time, bool) {
	u.Attempts++
	u.LastError = truncate(err.Error(), 1000)
	if u.Attempts >= maxListAttempts && w.dropUnreadList(log, u, fmt.Sprintf("its package list could not be read in %d attempts: %s", u.Attempts, u.LastError)) {
		return time.Time{}, false
	}
	// Or its drop failed: tried again after a back-off, not every round.
	u.NextAttempt = now.Add(Backoff(u.Attempts, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax))
	w.listTries[u.Key()] = *u
	if uerr := w.q.UpdateUnreadList(u); uerr != nil {
		log.WithError(uerr).Warn("recording a package list's failed read")
	}
	log.WithError(err).WithFields(logrus.Fields{"attempts": u.Attempts, "next_attempt": u.NextAttempt}).Warn("package list still cannot be read")
	return u.NextAttempt, true
}

// dropUnreadList gives up on u: a drop of the list with reason for each
// target that takes lists (the paths it names are unknown). ok: done.
func (w *Worker) dropUnreadList(log *logrus.Entry, u *queue.UnreadList, reason string) (ok bool) {
	var targets []string
	for _, t := range w.cfg.Targets {
		if t.PackageLists {
			targets = append(targets, t.Name)
		}
	}
	if err := w.q.DropUnreadList(u, targets, reason); err != nil {
		log.WithError(err).Error("dropping a package list that cannot be read")
		return false
	}
	delete(w.listTries, u.Key())
	log.WithField("reason", reason).Error("dropped a package list: what it names is not queued")
	return true
}

// newLists reports whether a package list waits to be read again: one the
// hook recorded after the last round.
func (w *Worker) newLists() bool {
	names, err := w.q.UnreadListNames()
	return err == nil && len(names) > 0
}
