package cli

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// push --pin: each root given (not its closure) is pinned in every Cachix
// target that pushes it, by the worker, once the root's closure is in that
// cache (see internal/worker/pins.go).

// pinFlags are push's --pin and the keep options of cachix pin.
type pinFlags struct {
	name            string
	days, revisions int
	forever         bool
	// Whether --keep-days and --keep-revisions were given: 0 is no
	// number of either to keep, not "not given".
	daysSet, revisionsSet bool
}

func (pf *pinFlags) defs() []flagDef {
	return []flagDef{
		{name: "pin", arg: "NAME", bind: stringVar(&pf.name), help: "pin each root given (not its closure) as NAME in every Cachix target that pushes it, once its closure is there; {host} and {target} in NAME are replaced"},
		{name: "keep-revisions", arg: "N", bind: givenIntVar(&pf.revisions, &pf.revisionsSet), help: "with --pin, Cachix keeps the pin's last N revisions"},
		{name: "keep-days", arg: "N", bind: givenIntVar(&pf.days, &pf.daysSet), help: "with --pin, Cachix keeps the pin's revisions for N days"},
		{name: "keep-forever", bind: switchVar(&pf.forever), help: "with --pin, Cachix keeps every revision of the pin"},
	}
}

// keep checks the pin options; "" with the keep when they are usable.
func (pf *pinFlags) keep() (queue.Keep, string) {
	k := queue.Keep{Days: pf.days, Revisions: pf.revisions, Forever: pf.forever}
	n := 0
	for _, set := range []bool{pf.daysSet, pf.revisionsSet, k.Forever} {
		if set {
			n++
		}
	}
	switch {
	case n > 0 && pf.name == "":
		return k, "--keep-days, --keep-revisions and --keep-forever go with --pin NAME"
	case n > 1:
		return k, "--keep-days, --keep-revisions and --keep-forever exclude each other (as in cachix pin)"
	case pf.daysSet && k.Days < 1 || pf.revisionsSet && k.Revisions < 1:
		return k, "--keep-days and --keep-revisions take a number above 0"
	}
	if pf.name != "" {
		if err := checkPinTemplate(pf.name); err != nil {
			return k, err.Error()
		}
	}
	return k, ""
}

var placeholder = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{[^{}]*\}`) })

// validPinName is queue.ValidPinName: what push refuses, the worker
// refuses to read.
var validPinName = queue.ValidPinName

func checkPinTemplate(tmpl string) error {
	for _, ph := range placeholder().FindAllString(tmpl, -1) {
		if ph != "{host}" && ph != "{target}" {
			return fmt.Errorf("--pin %q: unknown placeholder %s (known: {host}, {target})", tmpl, ph)
		}
	}
	if n := expandPin(tmpl, "h", "t"); !validPinName(n) {
		return fmt.Errorf("--pin %q: a pin name is 1 to 200 of A-Z a-z 0-9 . _ + @ = : -, not starting with -", tmpl)
	}
	return nil
}

func expandPin(tmpl, host, target string) string {
	return strings.NewReplacer("{host}", host, "{target}", target).Replace(tmpl)
}

// pinPlan is what push --pin will pin, and what it will not, with why.
type pinPlan struct {
	pins  []queue.Pin
	lines []string // one per (root, target): what happens
}

// planPins decides, for each root and target, whether the root is pinned
// there: a Cachix target whose rules select the root (sel), or that the
// record says has it (pushedTo: in the cache already, so pinned at once).
// facts and closure are what sel was decided with, so that a root left
// out is said to be left out by the rule that did (closure_deny,
// max_nar_size...), not by its patterns, which may select it.
func planPins(c *config.Config, roots []storepath.Path, sel *hook.Selection, facts func(string) *policy.Facts, closure func(string) *policy.Closure, pushedTo func(string, storepath.Path) bool, tmpl string, keep queue.Keep) (pinPlan, error) {
	var plan pinPlan
	cachix := 0
	for _, t := range c.Targets {
		if t.Store == "" {
			cachix++
		}
	}
	if cachix == 0 {
		return plan, fmt.Errorf("--pin: no target is a Cachix cache: a Nix store (%s) has no pins", strings.Join(targetNames(c), ", "))
	}
	selected := map[string]bool{}
	for _, p := range sel.Pairs {
		selected[p.Target+"\x00"+p.Path.String()] = true
	}
	keepText := ""
	if k := keep.String(); k != "" {
		keepText = " (" + k + ")"
	}
	for _, r := range roots {
		var cl *policy.Closure
		if closure != nil {
			cl = closure(r.String())
		}
		for _, t := range c.Targets {
			// A root pushed before (not in sel) is pinned at once where
			// the rules still select it: max_nar_size and closure_deny
			// apply to a pin as to its push. The worker asks them again
			// by name (policy.ByNameUnlisted), which keeps whatever
			// DecideTarget selects.
			d := policy.DecideTarget(t, r, facts(r.String()), cl)
			switch {
			case t.Store != "":
				plan.lines = append(plan.lines, fmt.Sprintf("not pinned in %s: it is a Nix store (%s), which has no pins", t.Name, config.RedactURI(t.Store)))
			case !selected[t.Name+"\x00"+r.String()] && !(pushedTo(t.Name, r) && d.Selected):
				plan.lines = append(plan.lines, fmt.Sprintf("not pinned in %s: its rules leave %s out (%s)", t.Name, r, d.Rule))
			default:
				name := expandPin(tmpl, c.Host, t.Name)
				if !validPinName(name) {
					return plan, fmt.Errorf("--pin %q: %q (host %q, target %q) is not a pin name: 1 to 200 of A-Z a-z 0-9 . _ + @ = : -", tmpl, name, c.Host, t.Name)
				}
				plan.pins = append(plan.pins, queue.Pin{Target: t.Name, Path: r.String(), Name: name, Keep: keep})
				plan.lines = append(plan.lines, fmt.Sprintf("will pin %s in %s as %q%s once its closure is pushed", r, t.Name, name, keepText))
			}
		}
	}
	return plan, nil
}

// queuePins queues the pins after their roots' entries (a crash in
// between loses the pins of a push that did not report success), stamped
// with since, the push's start: a drop of a root after it is the pin's.
func queuePins(c *config.Config, plan pinPlan, since time.Time) error {
	if len(plan.pins) == 0 {
		return nil
	}
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		return err
	}
	if _, err := q.AddPins(plan.pins, since); err != nil {
		// The others may be queued, or asked for again (which AddPins
		// does not count): a worker makes them.
		err = errors.Join(err, worker.EnsureRunning(c, q))
		return fmt.Errorf("could not queue the pins: %w", err)
	}
	return worker.EnsureRunning(c, q)
}

// pinsCount is what pinsLeft found of the pins a wait waits for.
type pinsCount struct {
	n int // still queued
	// allFailing: each waits for a back-off, its own or its root's;
	// failed counts those waiting for their own.
	allFailing bool
	failed     int
	// queued are their keys: their outcomes in the history are not the
	// last word (see reportPins).
	queued map[string]bool
}

// pinsLeft counts the pins a wait waits for (keys; nil: every pin of a
// configured target) still queued, and whether each waits for a back-off:
// its own, after it failed, or its root's, whose entry is among stated
// (the entries that may be failing, queue.Keys'), which the wait judges
// with the other entries, or, for push --pin's pins (keys), another
// command's entry, judged here.
func pinsLeft(c *config.Config, q *queue.Queue, keys []string, stated []string, now time.Time) (pinsCount, error) {
	pc := pinsCount{allFailing: true, queued: map[string]bool{}}
	var queued map[string]bool
	var drops map[string]worker.PinDrop
	count := func(p *queue.Pin) {
		pc.n++
		pc.queued[p.Key()] = true
		if p.Attempts > 0 && p.NextAttempt.After(now) {
			pc.failed++
			return
		}
		// Given up on, its file not removed (state.json says so): it
		// fails as a call does, its root not queued to say so.
		if drops == nil {
			drops = worker.LoadState(q.Dir).PinDrops
			if drops == nil {
				drops = map[string]worker.PinDrop{}
			}
		}
		if d, ok := drops[p.Key()]; ok && d.NextAttempt.After(now) {
			pc.failed++
			return
		}
		if !pc.allFailing {
			return
		}
		if queued == nil {
			queued = make(map[string]bool, len(stated))
			for _, k := range stated {
				queued[k] = true
			}
		}
		k, err := p.EntryKey()
		if err != nil || queued[k] {
			pc.allFailing = err == nil
			return
		}
		if keys == nil {
			pc.allFailing = false // stated: every entry that may be failing
			return
		}
		// push --pin found the root pushed before and queued the pin
		// alone, but another command queued the root again (push
		// --force), which the worker waits for: not among the wait's
		// entries.
		en, perr := q.Peek(k)
		pc.allFailing = perr == nil && en.Attempts > 0 && en.NextAttempt.After(now)
	}
	if keys != nil {
		for _, k := range keys {
			p, err := q.ReadPin(k)
			if errors.Is(err, os.ErrNotExist) {
				// The worker, giving up on the pin, moves its file
				// aside and links it back when push --pin asked for
				// it again (queue.DropPin): its ask says it is kept.
				// An ask alone is one left as the pin was made.
				if _, asked := q.PinAsked(k); asked && q.PinAside(k) {
					pc.n++
					pc.queued[k] = true
					pc.allFailing = false
					continue
				}
				// Or linked back since the look.
				p, err = q.ReadPin(k)
			}
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return pinsCount{}, err
			}
			count(p)
		}
		return pc, nil
	}
	pins, _, err := q.ListPins()
	if err != nil {
		return pinsCount{}, err
	}
	for _, p := range pins {
		if c.Target(p.Target) != nil {
			count(p)
		}
	}
	// A pin given up on as push --pin asked for it again is out of
	// pins/ for a moment, aside in tmp/, then linked back (as above):
	// the asks are few, and name those. An ask that cannot be listed
	// leaves the pins/ listing alone to go by, as it did.
	asks, _ := q.PinAskNames()
	for _, k := range asks {
		if pc.queued[k] {
			continue
		}
		if q.PinAside(k) {
			// Its target is the worker's, which gives up only on
			// pins of a target it has.
			pc.n++
			pc.queued[k] = true
			pc.allFailing = false
			continue
		}
		// Or linked back since the listing.
		if p, err := q.ReadPin(k); err == nil && c.Target(p.Target) != nil {
			count(p)
		}
	}
	return pc, nil
}

// pinKeys are the file names of pins.
func pinKeys(pins []queue.Pin) []string {
	keys := make([]string, 0, len(pins))
	for _, p := range pins {
		if r, err := storepath.Parse(storepath.StoreDir(), p.Path); err == nil {
			keys = append(keys, queue.PinKey(p.Target, r, p.Name))
		}
	}
	return keys
}

// pinRecordKey is the key of the pin a history record of a pin's
// outcome is about, "" when the record names none.
func pinRecordKey(r history.Record) string {
	root, err := storepath.Parse(storepath.StoreDir(), r.Path)
	name, qerr := strconv.Unquote(strings.SplitN(r.Pin, " ", 2)[0])
	if err != nil || qerr != nil {
		return ""
	}
	return queue.PinKey(r.Target, root, name)
}

// reportPins says how the pins a wait waited for ended (push --pin's, or
// every pin for wait), from the outcomes the wait's history reader gave
// (recs): made, or given up on with the reason, and counts those given
// up on (wait exits 3 then, as for a path lost). The reader started
// before push queued them: by the clock, a record written after a step
// back would seem older than the push, and a pin given up on would pass
// unsaid. A pin's last outcome is the one said: one given up on as push
// --pin asked for it again is queued anew (queue.DropPin), and may then
// be made. A pin still queued (queued: a wait that ended before its
// pins did) is said as queued, by the wait's list of what is left: the
// drop in the history of one kept as it was asked for again is not its
// last word, nor is that of one whose file the worker could not remove
// yet.
func reportPins(e *env, spec waitSpec, recs []history.Record, queued map[string]bool) (unpinned int) {
	last := make(map[string]int, len(recs))
	for i, r := range recs {
		last[pinRecordKey(r)] = i
	}
	for i, r := range recs {
		if k := pinRecordKey(r); k != "" && (last[k] != i || queued[k]) {
			continue
		}
		if r.Outcome == history.Pinned {
			if !spec.quiet {
				statusLine(e.stderr, "pinned %s in %s as %s", r.Path, r.Target, r.Pin)
			}
			continue
		}
		unpinned++
		statusLine(e.stderr, "not pinned %s in %s (%s): %s", r.Path, r.Target, r.Pin, oneLine(r.Reason))
	}
	return unpinned
}
