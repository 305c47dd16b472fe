package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/metrics"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// The rules at push time. An entry says only that a path was selected when
// it was queued, by the rules of that moment (or that someone wrote it):
// right before pushing, the worker asks package policy again, with the
// rules it has now and what it knows now (the path still in the store, its
// facts, its closure), and drops what they no longer select. One decision
// serves the hook, explain and the worker alike.

// Reasons of a drop that are no verdict of the rules: the path was to go
// up and cannot. `wait` counts them as losses (exit 3), and the rules'
// verdicts as what was asked for.
const (
	ReasonGone    = "no longer in the store (garbage-collected)"
	ReasonInvalid = "not a valid path in the Nix store (partly deleted?): its closure cannot be checked"
)

// Lost reports whether a drop's reason says the path could not go up,
// rather than that the rules left it out: also when the package list
// that chose it is gone (listGoneReason), which no rule decided.
func Lost(reason string) bool {
	return reason == ReasonGone || reason == ReasonInvalid ||
		strings.HasPrefix(reason, listGonePrefix) && strings.HasSuffix(reason, listGoneSuffix)
}

// listGoneReason is the reason of a listed path whose package list was
// garbage-collected before the worker could read it.
func listGoneReason(list string) string { return listGonePrefix + list + listGoneSuffix }

const (
	listGonePrefix = "its package list "
	listGoneSuffix = " is " + ReasonGone
)

// closures holds the runtime closures of a batch's paths, asked of Nix in
// one call when a closure can matter (the target denies something).
type closures struct {
	of  map[string][]string
	err error
}

// decide returns why the current rules leave e out of the job's target
// ("" when they still select it) and the kind of that reason (for the
// metrics: the rule's key, or one of package metrics' kinds), and whether
// that is because an upstream cache has it; or an error when that cannot
// be told now: then the entry waits for a retry, since pushing blind
// could upload a denied path. also is, for a path they select, what its
// closure uploads that they deny (closure_deny = "push"), for the
// history. j.facts.mu is held.
func (j *job) decide(e *queue.Entry, cl closures, ls listings, facts factMap, ns *notes) (reason, kind string, upstream bool, also string, err error) {
	t := j.target
	p, err := storepath.Parse(storepath.StoreDir(), e.Path)
	if err != nil {
		return "no longer selected: not a store path", metrics.KindInvalid, false, "", nil
	}
	// A package list that chose it must still name it and depend on it
	// (lists.go).
	if err, ok := ls.wait[e.Key()]; ok {
		return "", "", false, "", err
	}
	if why, ok := ls.drop[e.Key()]; ok {
		if Lost(why) {
			return why, metrics.KindGarbageCollected, false, "", nil
		}
		return why, metrics.KindPackageList, false, "", nil
	}
	listed := ls.of[e.Key()]
	if len(listed) > 0 && ls.err != nil {
		return "", "", false, "", ls.err
	}
	if !policy.Selects(t, p, listed) {
		td := policy.DecideTarget(t, p, listedEntryFacts(nil, listed), nil)
		return td.DropReason(), td.DropKind(), false, "", nil
	}
	if !j.present[e.Within] {
		if _, err := os.Lstat(e.Path); errors.Is(err, fs.ErrNotExist) {
			return ReasonGone, metrics.KindGarbageCollected, false, "", nil
		}
	}
	f := listedEntryFacts(facts[e.Path], listed)
	if j.pinned[e.Path] || e.Pinned {
		f = policy.ForPin(f)
	}
	closure := &policy.Closure{}
	if policy.DeniesByName(t) {
		if cl.err != nil {
			return "", "", false, "", fmt.Errorf("cannot tell whether its closure holds a path denied by the rules of %s: %w", t.Name, cl.err)
		}
		c, ok := cl.of[e.Path]
		if !ok {
			return ReasonInvalid, metrics.KindInvalid, false, "", nil
		}
		closure.Paths = c
	} else if t.MaxNarSize > 0 {
		// max_nar_size is the closure rule's too: without the closure,
		// a path larger than it could go up inside this one's.
		if cl.err != nil {
			return "", "", false, "", fmt.Errorf("cannot tell whether its closure holds a path larger than max_nar_size of %s: %w", t.Name, cl.err)
		}
		if _, ok := cl.of[e.Path]; !ok {
			return ReasonInvalid, metrics.KindInvalid, false, "", nil
		}
	}
	// The sizes of the closure come with the facts (see query).
	if f != nil && t.MaxNarSize > 0 {
		if closure.Paths == nil {
			closure.Paths = cl.of[e.Path]
		}
		closure.NarSize = j.facts.gather.NarSize
	}
	td := policy.DecideTarget(t, p, f, closure)
	if !td.Selected {
		return td.DropReason(), td.DropKind(), td.Check == "upstream", "", nil
	}
	if td.Dependency != "" {
		// closure_deny = "push": the dependency goes up with it.
		msg, field := "uploading a denied path inside the closure of a selected one (closure_deny = \"push\")", "denied"
		if td.DependencyKey == "max_nar_size" {
			msg, field = "uploading a path larger than max_nar_size inside the closure of a selected one (closure_deny = \"push\")", "larger"
		}
		ns.add(logrus.WarnLevel, msg, "rule", td.DependencyRule, e.Path, field, td.Dependency)
		also = fmt.Sprintf(alsoUploaded+"%s (%s) inside its closure (closure_deny = \"push\")", td.Dependency, td.DependencyRule)
	}
	return "", "", false, also, nil
}

// alsoUploaded starts the reason recorded for a pushed path whose closure
// uploaded a path the rules deny (closure_deny = "push").
const alsoUploaded = "also uploaded "

// AlsoUploaded is the denied path a pushed path's recorded reason says
// went up inside its closure; "" when it names none. log --path finds
// it: that record is the only one that says it left the machine.
func AlsoUploaded(reason string) string {
	rest, ok := strings.CutPrefix(reason, alsoUploaded)
	if !ok {
		return ""
	}
	p, _, _ := strings.Cut(rest, " ")
	return p
}
