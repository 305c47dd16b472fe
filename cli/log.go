package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
)

func runLog(e *env) int {
	fs := e.flags("log", "[--json] [--target T] [--since DUR] [--path GLOB]",
		"Print the worker's record of outcomes, oldest first: each path pushed, dropped\n(with the reason) or failed (with the pusher's error), per target, with the\ntime and the pusher call's duration. The record lives in the queue directory\n("+history.File+", rotated past 4 MiB, so at most 8 MiB).")
	asJSON := fs.Bool("json", false, "print JSON lines")
	target := fs.String("target", "", "only the target named `T`")
	since := fs.Duration("since", 0, "only the last `DUR` (e.g. 1h)")
	glob := fs.String("path", "", "only paths matching `GLOB`: without /, the name after the hash (hello-*); with /, the whole path")
	if st, ok := e.parse(fs); !ok {
		return st
	}
	if fs.NArg() > 0 {
		e.errorf("log takes no arguments (filter with --path GLOB)")
		return 2
	}
	if *glob != "" {
		if _, err := path.Match(*glob, ""); err != nil {
			e.errorf("--path %q: %v", *glob, err)
			return 2
		}
	}
	c, q, ok := e.openQueue()
	if !ok {
		return 1
	}
	if *target != "" && c.Target(*target) == nil {
		e.errorf("warning: no target %q in %s; showing its past records", *target, configName(c.File))
	}
	recs, err := history.Read(q.Dir)
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	var from time.Time
	if *since > 0 {
		from = time.Now().Add(-*since)
	}
	enc := json.NewEncoder(e.stdout)
	for _, r := range recs {
		if (*target != "" && r.Target != *target) || r.Time.Before(from) || !matchPath(*glob, r.Path) {
			continue
		}
		if *asJSON {
			_ = enc.Encode(r)
			continue
		}
		printRecord(e.stdout, r)
	}
	return 0
}

// matchPath matches a store path against a --path glob: the whole path
// when the glob has a /, else the name after the hash.
func matchPath(glob, p string) bool {
	if glob == "" {
		return true
	}
	subject := p
	if !strings.Contains(glob, "/") {
		subject = path.Base(p)
		if i := strings.IndexByte(subject, '-'); i >= 0 {
			subject = subject[i+1:]
		}
	}
	ok, _ := path.Match(glob, subject)
	return ok
}

func printRecord(w io.Writer, r history.Record) {
	line := fmt.Sprintf("%s %-7s %s %s", r.Time.Local().Format(time.RFC3339), r.Outcome, r.Target, r.Path)
	if r.Batch > 0 {
		line += fmt.Sprintf(" (batch of %d, %s)", r.Batch, r.Duration.Round(time.Millisecond))
	}
	if r.Reason != "" {
		line += ": " + oneLine(r.Reason)
	}
	fmt.Fprintln(w, line)
}

// oneLine keeps a multi-line pusher error on the record's line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func configName(file string) string {
	if file == "" {
		return "the configuration (environment only)"
	}
	return file
}
