package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// runRecord fills the record of paths pushed to a target (package pushed)
// with n made-up paths, as the worker records them after pushes: the file
// is the one the hook reads for that target, because the key comes from
// the same config (Target.RecordKey). None of the benchmark's real paths
// is among them, so the hook still queues those.
func runRecord(args []string) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	conf := fs.String("config", "", "hook.conf")
	target := fs.String("target", "", "target name")
	n := fs.Int("n", 0, "paths to record")
	results := fs.String("results", "", "append the record's size here")
	name := fs.String("name", "record entries", "result name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := config.Load(*conf)
	if err != nil {
		return err
	}
	t := c.Target(*target)
	if t == nil {
		return fmt.Errorf("%s has no target %q", *conf, *target)
	}
	if c.Queue.RememberPushed <= 0 {
		return errors.New("queue.remember_pushed is 0: the config keeps no record")
	}
	if _, err := queue.Open(c.Queue.Dir); err != nil { // the queue directory, as the worker makes it
		return err
	}
	rec, err := pushed.OpenWrite(c.Queue.Dir, t.RecordKey(), c.Queue.RememberPushed)
	if err != nil {
		return err
	}
	defer rec.Close()
	rng := rand.New(rand.NewPCG(uint64(*n), 7))
	now := time.Now()
	const chunk = 10000 // as the worker adds them: one batch at a time
	for done := 0; done < *n; {
		k := min(chunk, *n-done)
		hs := make([]pushed.Hash, k)
		for i := range hs {
			if hs[i], err = pushed.ParseHash(fakeHash(rng)); err != nil {
				return err
			}
		}
		if err := rec.Add(hs, now); err != nil {
			return err
		}
		done += k
	}
	got := rec.Count()
	fmt.Fprintf(os.Stderr, "  record of %s (%s): %d paths\n", *target, pushed.File(c.Queue.Dir, t.RecordKey()), got)
	// A full bucket forgets its oldest slot, so a few may be missing.
	if got < *n*95/100 {
		return fmt.Errorf("record holds %d paths, %d added", got, *n)
	}
	return appendResults(*results, Result{Kind: "count", Name: *name, Value: float64(got), Items: *n})
}
