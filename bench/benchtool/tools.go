package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// runHoldLock holds queues' worker locks, as a busy worker does (the hook
// then only probes them): around a command, where a lock taken (a worker
// draining the queue under the measurement) is an error; or, with no
// command, waiting for them, then until SIGTERM.
func runHoldLock(args []string) error {
	fs := flag.NewFlagSet("holdlock", flag.ContinueOnError)
	dirs := fs.String("queue", "", "queue directories, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	how := syscall.LOCK_EX | syscall.LOCK_NB
	if fs.NArg() == 0 {
		how = syscall.LOCK_EX
	}
	for _, dir := range strings.Split(*dirs, ",") {
		if _, err := queue.Open(dir); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), how); err != nil {
			return fmt.Errorf("the worker lock of %s is taken: %w", dir, err)
		}
	}
	if fs.NArg() == 0 { // until SIGTERM, once it has said so
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("held")
		<-sig
		return nil
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// runFill makes n made-up paths for a target of a hook.conf: entries in
// its queue, one file each in the queue's format as hooks would have
// written them (without 100,000 fsyncs); or, with -record, added to the
// target's record of pushed paths 10,000 at a time as the worker does,
// printing how many it holds (a full bucket forgets its oldest).
func runFill(args []string) error {
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	conf := fs.String("config", "", "hook.conf")
	target := fs.String("target", "", "target name")
	n := fs.Int("n", 0, "paths")
	record := fs.Bool("record", false, "record them as pushed instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := config.Load(*conf)
	if err != nil {
		return err
	}
	t := c.Target(*target)
	if t == nil {
		return fmt.Errorf("%s: no target %q", *conf, *target)
	}
	if _, err := queue.Open(c.Queue.Dir); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(*n), 42))
	if !*record {
		for i := 0; i < *n; i++ {
			p := storepath.New(storepath.DefaultStoreDir, fakeHash(rng), fmt.Sprintf("benchfill-%d-1.0", i))
			data, _ := json.Marshal(&queue.Entry{Target: *target, Path: p.String(), Queued: time.Now().Add(-time.Minute).UTC()})
			if err := os.WriteFile(filepath.Join(c.Queue.Dir, "entries", queue.Key(*target, p)), append(data, '\n'), 0o600); err != nil {
				return err
			}
		}
		return nil
	}
	rec, err := pushed.OpenWrite(c.Queue.Dir, t.RecordKey(), c.Queue.RememberPushed)
	if err != nil {
		return err
	}
	defer rec.Close()
	for done := 0; done < *n; done += 10000 {
		hs := make([]pushed.Hash, min(10000, *n-done))
		for i := range hs {
			hs[i], _ = pushed.ParseHash(fakeHash(rng))
		}
		if err := rec.Add(hs, time.Now()); err != nil {
			return err
		}
	}
	fmt.Println(rec.Count())
	return nil
}

func fakeHash(rng *rand.Rand) string {
	b := make([]byte, storepath.HashLen)
	for i := range b {
		b[i] = "0123456789abcdfghijklmnpqrsvwxyz"[rng.IntN(32)]
	}
	return string(b)
}
