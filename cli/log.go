package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// logOptions are log's flags.
type logOptions struct {
	json         bool
	target, glob string
	since        time.Duration
}

func runLog(e *env, o *logOptions) int {
	if o.since < 0 {
		e.errorf("log: --since %s: the duration must not be negative (--since 1h: the last hour)", config.HumanDuration(o.since))
		return 2
	}
	match, err := pathMatcher(o.glob)
	if err != nil {
		e.errorf("log: %v", err)
		return 2
	}
	c, q, ok := e.openQueue()
	if !ok {
		return 1
	}
	if o.target != "" && c.Target(o.target) == nil {
		e.errorf("warning: no target %q in %s; showing its past records", o.target, configName(c.File))
	}
	// What can be read is shown, and what cannot is said.
	status := 0
	recs, err := history.Read(q.Dir)
	if err != nil {
		e.errorf("%v", err)
		status = 1
	}
	var from time.Time
	if o.since > 0 {
		from = time.Now().Add(-o.since)
	}
	enc := jsonEncoder(e.stdout)
	for _, r := range recs {
		// A pushed path's record is also that of the denied path its
		// closure uploaded (closure_deny = "push"): no record of its own
		// says that this one left the machine.
		uploaded := r.Outcome == history.Pushed && match(worker.AlsoUploaded(r.Reason))
		if (o.target != "" && r.Target != o.target) || r.Time.Before(from) || !match(r.Path) && !uploaded {
			continue
		}
		if o.json {
			_ = enc.Encode(r)
			continue
		}
		printRecord(e.stdout, r)
	}
	return status
}

// pathMatcher matches a store path against a --path glob as allow and
// deny rules match (filter's syntax, braces included): without /, the
// name after the hash; starting with /, the whole path. A pattern that
// does not compile is refused, not left to match nothing.
func pathMatcher(glob string) (func(string) bool, error) {
	if glob == "" {
		return func(string) bool { return true }, nil
	}
	rules, err := filter.Compile([]string{glob}, nil)
	if err != nil {
		var pe *filter.PatternError
		if errors.As(err, &pe) {
			if pe.Offset < 0 {
				return nil, fmt.Errorf("--path %q: bad pattern: %s", glob, pe.Reason)
			}
			return nil, fmt.Errorf("--path %q: bad pattern at offset %d: %s", glob, pe.Offset, pe.Reason)
		}
		return nil, fmt.Errorf("--path %q: %v", glob, err)
	}
	storeDir := storepath.StoreDir()
	return func(s string) bool {
		p, err := storepath.Parse(storeDir, s)
		return err == nil && rules.Decide(p).Selected
	}, nil
}

func printRecord(w io.Writer, r history.Record) {
	line := fmt.Sprintf("%s %-7s %s %s", r.Time.Local().Format(time.RFC3339), r.Outcome, r.Target, r.Path)
	if r.Batch > 0 {
		line += fmt.Sprintf(" (batch of %d, %s)", r.Batch, r.Duration.Round(time.Millisecond))
	}
	if r.Listed != "" {
		line += " (listed in " + r.Listed + ")"
	}
	if r.Pin != "" {
		line += " pin " + r.Pin
	}
	if r.Reason != "" {
		line += ": " + oneLine(r.Reason)
	}
	// The history is read from a file: what it holds goes to a
	// terminal with its control characters escaped, as errorf's
	// messages do, and a newline in it cannot forge a record.
	fmt.Fprintln(w, escape.Controls(strings.ReplaceAll(line, "\n", `\x0a`)))
}

// oneLine keeps a multi-line pusher error on the record's line.
// Its control characters escaped too: a reason holds what a pusher
// printed (cachix colours its output), and goes to a terminal from status,
// wait, push --wait and doctor.
func oneLine(s string) string {
	return escape.Controls(strings.Join(strings.Fields(s), " "))
}

func configName(file string) string {
	if file == "" {
		return "the configuration (environment only)"
	}
	return file
}
