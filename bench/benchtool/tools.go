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
// then only probes them); without -wait, a lock taken (a worker draining
// the queue under the measurement) is an error.
func runHoldLock(args []string) error {
	fs := flag.NewFlagSet("holdlock", flag.ContinueOnError)
	dirs := fs.String("queue", "", "queue directories, comma-separated")
	wait := fs.Bool("wait", false, "wait for the locks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	how := syscall.LOCK_EX | syscall.LOCK_NB
	if *wait {
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
	if fs.NArg() == 0 {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return nil
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// runFill writes entries for made-up paths in the queue's format, one
// file each, as hooks would have, without 100,000 fsyncs.
func runFill(args []string) error {
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	dir := fs.String("queue", "", "queue directory")
	target := fs.String("target", "", "target name")
	n := fs.Int("n", 0, "entries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := queue.Open(*dir); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(*n), 42))
	for i := 0; i < *n; i++ {
		p := storepath.Path{Dir: storepath.DefaultStoreDir, Hash: fakeHash(rng), Name: fmt.Sprintf("benchfill-%d-1.0", i)}
		data, _ := json.Marshal(&queue.Entry{Target: *target, Path: p.String(), Queued: time.Now().Add(-time.Minute).UTC()})
		if err := os.WriteFile(filepath.Join(*dir, "entries", queue.Key(*target, p)), append(data, '\n'), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func fakeHash(rng *rand.Rand) string {
	b := make([]byte, storepath.HashLen)
	for i := range b {
		b[i] = "0123456789abcdfghijklmnpqrsvwxyz"[rng.IntN(32)]
	}
	return string(b)
}

// runRecord adds made-up paths to the record the hook reads for a target,
// 10,000 at a time as the worker does, and prints how many it holds (a
// full bucket forgets its oldest).
func runRecord(args []string) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	conf := fs.String("config", "", "hook.conf")
	target := fs.String("target", "", "target name")
	n := fs.Int("n", 0, "paths to record")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := config.Load(*conf)
	if err != nil {
		return err
	}
	t := c.Target(*target)
	if t == nil || c.Queue.RememberPushed <= 0 {
		return fmt.Errorf("%s: no target %q, or no record kept", *conf, *target)
	}
	if _, err := queue.Open(c.Queue.Dir); err != nil {
		return err
	}
	rec, err := pushed.OpenWrite(c.Queue.Dir, t.RecordKey(), c.Queue.RememberPushed)
	if err != nil {
		return err
	}
	defer rec.Close()
	rng := rand.New(rand.NewPCG(uint64(*n), 7))
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

// runWaitFiles prints the seconds until a cache directory holds n
// narinfos, whichever pusher wrote them.
func runWaitFiles(args []string) error {
	fs := flag.NewFlagSet("waitfiles", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory")
	n := fs.Int("n", 0, "narinfos to wait for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	for time.Since(start) < 10*time.Minute {
		names, _ := filepath.Glob(filepath.Join(*dir, "*.narinfo"))
		if len(names) >= *n {
			fmt.Printf("%.3f\n", time.Since(start).Seconds())
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("fewer than %d narinfos in %s after 10 minutes", *n, *dir)
}
