package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// confBody is a hook.conf for the queue q; extra goes at the top level
// (or opens sections of its own, before [queue]). unsubstitutable =
// "push": no rule reads facts from Nix, which the package's checkPhase
// runs without.
func confBody(q, extra string) string {
	return fmt.Sprintf("cache = \"main\"\nallow = [\"*\"]\nunsubstitutable = \"push\"\n%s\n[queue]\ndir = %q\nretry_initial = \"1h\"\nretry_max = \"2h\"\nlinger = \"0s\"\n", extra, q)
}

func writeConf(t *testing.T, file, body string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pushersByBin hands each configuration's target the fake pusher of its
// cachix.bin, so a test tells which configuration a push used.
type pushersByBin struct {
	mu    sync.Mutex
	fakes map[string]*fakePusher
}

func (p *pushersByBin) get(bin string) *fakePusher {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fakes == nil {
		p.fakes = map[string]*fakePusher{}
	}
	if p.fakes[bin] == nil {
		p.fakes[bin] = &fakePusher{}
	}
	return p.fakes[bin]
}

func (p *pushersByBin) calls(bin string) int {
	c, _ := p.get(bin).Calls()
	return len(c)
}

// watchedWorker is a worker following the config file, as `worker`
// runs it; loads counts the times it loaded the file.
func watchedWorker(t *testing.T, e *env, file string, ps *pushersByBin) (*Worker, *int) {
	t.Helper()
	fp := TakeFingerprint(file)
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = c
	log := logrus.New()
	log.Out = e.log
	log.Level = logrus.DebugLevel
	w := New(c, e.q, log)
	w.newPusher = func(c *config.Config, _ *config.Target) pusher.Pusher { return ps.get(c.Cachix.Bin) }
	w.setConfig(c)
	loads := new(int)
	w.WatchConfig(Watch{Flag: file, Loaded: fp, Load: func() (*config.Config, error) {
		*loads++
		return config.Load(file)
	}})
	return w, loads
}

// failing marks an entry as failed once, due in an hour.
func failing(t *testing.T, e *env, target string, p storepath.Path) {
	t.Helper()
	x, ok := e.q.Get(queue.Key(target, p))
	if !ok {
		t.Fatalf("no entry for %s", p)
	}
	x.Attempts, x.NextAttempt, x.LastError = 1, time.Now().Add(time.Hour), "cachix not found"
	if err := e.q.Update(x); err != nil {
		t.Fatal(err)
	}
}

// `retry` after fixing cachix.bin: the running worker loads the fixed
// config before it pushes the retried entry, and pushes with it.
func TestReloadRetryUsesNewConfig(t *testing.T) {
	fakeStore(t)
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, confBody(e.q.Dir, "[cachix]\nbin = \"/old/cachix\""))
	ps := &pushersByBin{}
	w, _ := watchedWorker(t, e, file, ps)
	p := build(t, "a-1")[0]
	e.add(t, "main", p)
	failing(t, e, "main", p)
	n := rounds(w)
	defer runService(t, w)()
	waitRound(t, n, e.log)
	if n := ps.calls("/old/cachix"); n != 0 {
		t.Fatalf("pushed %d times before the retry", n)
	}
	writeConf(t, file, confBody(e.q.Dir, "[cachix]\nbin = \"/new/cachix\""))
	if err := e.q.RequestRetry(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried push", func() bool { return ps.calls("/new/cachix")+ps.calls("/old/cachix") > 0 }, e.log)
	if n := ps.calls("/old/cachix"); n != 0 {
		t.Errorf("the retried entry went to the old config's pusher (%d calls)", n)
	}
	waitFor(t, "the entry to be removed", func() bool { names, _ := e.q.Names(); return len(names) == 0 })
	if !strings.Contains(e.log.String(), "the configuration changed: reloaded") {
		t.Errorf("no reload in the log:\n%s", e.log)
	}
	wi := LoadState(e.q.Dir).Worker
	if wi == nil || wi.File != file || wi.Digest != FingerprintOf(file).Digest || wi.PID != os.Getpid() || wi.ConfigError != "" {
		t.Errorf("state.json's worker = %+v, want the new config's file and digest", wi)
	}
}

// A deny rule added while the worker runs drops a queued path at its next
// attempt, with the rule named; the new retry_max cuts the back-off the
// old one set.
func TestReloadDenyAddedWhileRunning(t *testing.T) {
	fakeStore(t)
	e := newEnv(t)
	bin := fakeNixStore(t)
	file := filepath.Join(t.TempDir(), "hook.conf")
	nix := fmt.Sprintf("[nix]\nbin_dir = %q", bin)
	writeConf(t, file, confBody(e.q.Dir, nix))
	ps := &pushersByBin{}
	w, _ := watchedWorker(t, e, file, ps)
	hello, other := build(t, "hello-2.12.1")[0], build(t, "other-1.0")[0]
	e.add(t, "main", hello, other)
	failing(t, e, "main", hello)
	failing(t, e, "main", other)
	start := time.Now().Add(-time.Second)
	n := rounds(w)
	defer runService(t, w)()
	// The worker has seen both entries, waiting, under the old rules.
	waitRound(t, n, e.log)
	body := strings.Replace(confBody(e.q.Dir, "deny = [\"hello-*\"]\n"+nix), `retry_max = "2h"`, `retry_max = "200ms"`, 1)
	body = strings.Replace(body, `retry_initial = "1h"`, `retry_initial = "100ms"`, 1)
	writeConf(t, file, body)
	waitFor(t, "hello to be dropped", func() bool { _, ok := e.q.Dropped(queue.Key("main", hello), start, 0); return ok })
	d, _ := e.q.Dropped(queue.Key("main", hello), start, 0)
	if d.Reason != `no longer selected: deny "hello-*"` {
		t.Errorf("hello dropped with %q", d.Reason)
	}
	waitFor(t, "other to be pushed", func() bool { names, _ := e.q.Names(); return len(names) == 0 })
	calls, _ := ps.get("cachix").Calls()
	if len(calls) != 1 || len(calls[0]) != 1 || calls[0][0] != other.String() {
		t.Errorf("pusher calls = %q, want other-1.0 alone", calls)
	}
}

// The cheap check: a stat that did not change reads nothing until the
// periodic re-hash, which finds a change the stat cannot show (an mtime
// kept); rewriting the same bytes loads nothing.
func TestReloadStatThenRehash(t *testing.T) {
	fakeStore(t)
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, confBody(e.q.Dir, ""))
	w, loads := watchedWorker(t, e, file, &pushersByBin{})
	w.state = LoadState(e.q.Dir)
	now := time.Now()
	w.checkConfig(now, false)
	if *loads != 0 {
		t.Fatalf("loaded %d times with nothing changed", *loads)
	}
	// Same bytes, new mtime: read and hashed, not loaded.
	writeConf(t, file, confBody(e.q.Dir, ""))
	w.checkConfig(now, false)
	if *loads != 0 {
		t.Errorf("the same bytes written again were loaded (%d)", *loads)
	}
	// New bytes the stat cannot tell (as if size, mtime and ctime were
	// kept): nothing until the re-hash is due.
	writeConf(t, file, confBody(e.q.Dir, `deny = ["x-*"]`))
	w.watch.last, w.watch.hashed = w.watch.look(), now
	w.checkConfig(now.Add(rehashEvery/2), false)
	if *loads != 0 || policy.DeniesByName(w.cfg.Targets[0]) {
		t.Fatalf("loaded %d times before the re-hash was due", *loads)
	}
	w.checkConfig(now.Add(rehashEvery), false)
	if *loads != 1 || !policy.DeniesByName(w.cfg.Targets[0]) {
		t.Errorf("the re-hash did not load the new bytes (%d loads)", *loads)
	}
	// A retry request reads the file at once.
	writeConf(t, file, confBody(e.q.Dir, `deny = ["y-*"]`))
	w.watch.last, w.watch.hashed = w.watch.look(), now
	w.checkConfig(now, true)
	if *loads != 2 || w.cfg.Targets[0].Deny[0] != "y-*" {
		t.Errorf("a retry request did not load the new bytes (%d loads, deny %q)", *loads, w.cfg.Targets[0].Deny)
	}
}

// A config that became invalid: the worker keeps the old one whole, logs
// the problem, says so in state.json, and tries again later (on a change,
// or after a back-off), never in a loop.
func TestReloadInvalidKeepsOld(t *testing.T) {
	fakeStore(t)
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, confBody(e.q.Dir, `deny = ["a-*"]`))
	w, loads := watchedWorker(t, e, file, &pushersByBin{})
	w.state = LoadState(e.q.Dir)
	old := w.cfg
	writeConf(t, file, confBody(e.q.Dir, `deny = ["b-*"]`+"\nalow = [\"*\"]"))
	now := time.Now()
	w.checkConfig(now, false)
	if w.cfg != old {
		t.Fatal("an invalid config replaced the one in use")
	}
	if !strings.Contains(e.log.String(), `unknown key \"alow\"`) || !strings.Contains(e.log.String(), "keeps the one it has") {
		t.Errorf("the log does not name the problem:\n%s", e.log)
	}
	wi := LoadState(e.q.Dir).Worker
	if wi == nil || !strings.Contains(wi.ConfigError, `unknown key "alow"`) || wi.Digest != w.watch.cur.Digest {
		t.Errorf("state.json's worker = %+v, want the error and the old digest", wi)
	}
	// Every round of the loop checks: no load until the back-off ends.
	for i := range 50 {
		w.checkConfig(now.Add(time.Duration(i)*time.Millisecond), false)
	}
	if *loads != 1 {
		t.Errorf("an invalid config was loaded %d times in 50 rounds", *loads)
	}
	w.checkConfig(now.Add(loadRetryMin), false)
	if *loads != 2 || w.cfg != old {
		t.Errorf("after the back-off: %d loads, config replaced %v", *loads, w.cfg != old)
	}
	// Twice as long before the next attempt.
	w.checkConfig(now.Add(loadRetryMin+loadRetryMin), false)
	if *loads != 2 {
		t.Errorf("the back-off did not grow: %d loads", *loads)
	}
	// Fixed: loaded at the next look, and the error is gone.
	writeConf(t, file, confBody(e.q.Dir, `deny = ["c-*"]`))
	w.checkConfig(now.Add(loadRetryMin+time.Second), false)
	if w.cfg == old || w.cfg.Targets[0].Deny[0] != "c-*" {
		t.Fatalf("the fixed config was not loaded (%d loads)", *loads)
	}
	if wi := LoadState(e.q.Dir).Worker; wi == nil || wi.ConfigError != "" {
		t.Errorf("state.json's worker after the fix = %+v", wi)
	}
}

// A log.file the worker cannot open rejects the configuration: Prepare's
// error keeps the old one, and its commit runs only for one that loads.
func TestReloadPrepareRejects(t *testing.T) {
	fakeStore(t)
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, confBody(e.q.Dir, ""))
	w, _ := watchedWorker(t, e, file, &pushersByBin{})
	w.state = LoadState(e.q.Dir)
	committed := 0
	w.watch.Prepare = func(c *config.Config) (func(), error) {
		if c.Log.File == "/nonexistent/worker.log" {
			return nil, errors.New("log.file: opening log: no such file or directory")
		}
		return func() { committed++ }, nil
	}
	old := w.cfg
	writeConf(t, file, confBody(e.q.Dir, "[log]\nfile = \"/nonexistent/worker.log\""))
	w.checkConfig(time.Now(), false)
	if w.cfg != old || committed != 0 || !strings.Contains(e.log.String(), "log.file: opening log") {
		t.Fatalf("a config whose log cannot be opened: replaced %v, committed %d\n%s", w.cfg != old, committed, e.log)
	}
	writeConf(t, file, confBody(e.q.Dir, `deny = ["z-*"]`))
	w.checkConfig(time.Now(), false)
	if w.cfg == old || committed != 1 {
		t.Errorf("a good config: replaced %v, committed %d", w.cfg != old, committed)
	}
}

// A reload that points a target at another cache while a push to the old
// one runs: that push is recorded for the old cache, and every push after
// it for the new one. The record decides what the hook leaves out, so a
// path recorded for a cache it never reached would never go there.
func TestReloadRecordsFollowTheDestination(t *testing.T) {
	fakeStore(t)
	oldT, newT := mkTarget(t, "main", []string{"*"}, nil), mkTarget(t, "main", []string{"*"}, nil)
	oldT.Cache, newT.Cache = "cache-a", "cache-b"
	e := newEnv(t, oldT)
	e.cfg.Queue.RememberPushed = time.Hour
	newCfg := mkConfig(e.q.Dir, newT)
	newCfg.Queue.RememberPushed = time.Hour
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, "a")
	g := &gatedPusher{started: make(chan []string, 4), release: make(chan struct{})}
	w := e.worker(nil)
	w.newPusher = func(*config.Config, *config.Target) pusher.Pusher { return g }
	w.setConfig(e.cfg)
	w.WatchConfig(Watch{Flag: file, Loaded: TakeFingerprint(file), Load: func() (*config.Config, error) { return newCfg, nil }})
	before, after := build(t, "before-1")[0], build(t, "after-1")[0]
	e.add(t, "main", before)
	defer runService(t, w)()
	select {
	case <-g.started:
	case <-time.After(eventually.Left(t)):
		t.Fatal("no push of the first path")
	}
	writeConf(t, file, "b")
	waitFor(t, "the reload", func() bool { return strings.Contains(e.log.String(), "reloaded") }, e.log)
	g.release <- struct{}{}
	waitFor(t, "the first path to leave the queue", func() bool { n, _ := e.q.Names(); return len(n) == 0 }, e.log)
	e.add(t, "main", after)
	select {
	case <-g.started:
	case <-time.After(eventually.Left(t)):
		t.Fatal("no push of the second path")
	}
	g.release <- struct{}{}
	waitFor(t, "the second path to leave the queue", func() bool { n, _ := e.q.Names(); return len(n) == 0 }, e.log)

	has := func(tg *config.Target, p storepath.Path) bool {
		rec, err := pushed.OpenRead(e.q.Dir, tg.RecordKey(), time.Hour)
		if err != nil || rec == nil {
			return false
		}
		defer rec.Close()
		return rec.Has(hashOf(t, p), time.Now())
	}
	if !has(oldT, before) {
		t.Error("the push to cache-a is not recorded for cache-a")
	}
	if has(oldT, after) {
		t.Error("the push to cache-b after the reload is recorded for cache-a, which never got it")
	}
	if !has(newT, after) {
		t.Error("the push to cache-b after the reload is not recorded for cache-b")
	}
}

// A deny rule that arrives while a batch is being prepared (its facts
// asked, another target's query ahead of it) holds for that batch: a path
// the new rules deny is not uploaded by the rules the batch started with.
func TestReloadDenyWhileBatchPrepared(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	newCfg := mkConfig(e.q.Dir, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	newCfg.Nix.BinDir = fakeNixStore(t)
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, "a")
	f := &fakePusher{}
	w := e.worker(nil)
	w.newPusher = func(*config.Config, *config.Target) pusher.Pusher { return f }
	w.setConfig(e.cfg)
	w.WatchConfig(Watch{Flag: file, Loaded: TakeFingerprint(file), Load: func() (*config.Config, error) { return newCfg, nil }})
	secret := build(t, "secret-1")[0]
	e.add(t, "main", secret)
	// Another job's query holds the facts: the batch waits for them
	// after it started.
	held := w.facts
	held.mu.Lock()
	n := rounds(w)
	defer runService(t, w)()
	waitRound(t, n, e.log)
	writeConf(t, file, "b")
	waitFor(t, "the reload", func() bool { return strings.Contains(e.log.String(), "reloaded") }, e.log)
	held.mu.Unlock()
	waitFor(t, "the entry to leave the queue", func() bool { names, _ := e.q.Names(); return len(names) == 0 }, e.log)
	if calls, _ := f.Calls(); len(calls) != 0 {
		t.Errorf("pusher calls = %q: a path the reloaded rules deny was uploaded", calls)
	}
	if d, ok := e.q.Dropped(queue.Key("main", secret), time.Now().Add(-time.Hour), 0); !ok || !strings.Contains(d.Reason, `deny "secret-*"`) {
		t.Errorf("the denied path was not dropped by the new rule (%v): %+v", ok, d)
	}
}

// A push that fails after a reload shortened queue.retry_max backs off by
// the new one: the reload cut the back-offs already set, and one set
// after it must not wait longer.
func TestReloadRetryMaxHoldsForRunningPush(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil)) // retry_initial 1h, retry_max 2h
	newCfg := mkConfig(e.q.Dir, mkTarget(t, "main", []string{"*"}, nil))
	newCfg.Queue.RetryInitial, newCfg.Queue.RetryMax = 50*time.Millisecond, 100*time.Millisecond
	file := filepath.Join(t.TempDir(), "hook.conf")
	writeConf(t, file, "a")
	g := &gatedPusher{started: make(chan []string, 4), release: make(chan struct{})}
	g.fail = func([]string) error { return errors.New("HTTP 502") }
	w := e.worker(nil)
	w.newPusher = func(*config.Config, *config.Target) pusher.Pusher { return g }
	w.setConfig(e.cfg)
	w.WatchConfig(Watch{Flag: file, Loaded: TakeFingerprint(file), Load: func() (*config.Config, error) { return newCfg, nil }})
	e.add(t, "main", build(t, "a-1")...)
	defer runService(t, w)()
	started := func(what string) {
		t.Helper()
		select {
		case <-g.started:
		case <-time.After(eventually.Left(t)):
			t.Fatalf("no %s:\n%s", what, e.log)
		}
	}
	started("first push")
	writeConf(t, file, "b")
	waitFor(t, "the reload", func() bool { return strings.Contains(e.log.String(), "reloaded") }, e.log)
	g.release <- struct{}{}
	started("retry within the new retry_max (100ms)")
	g.release <- struct{}{}
}

// A reload keeps what Nix and the upstreams said of store paths while it
// asks the same Nix the same way: a batch the reload set aside is decided
// again from them, so a hook.conf that changes often cannot hold it back
// by discarding them each time. Another Nix is asked anew.
func TestReloadKeepsFactsForTheSameNix(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	kept := w.facts
	same := mkConfig(e.q.Dir, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	same.Nix, same.UpstreamTimeout, same.UpstreamDeadline = e.cfg.Nix, e.cfg.UpstreamTimeout, e.cfg.UpstreamDeadline
	w.setConfig(same)
	if w.facts != kept {
		t.Errorf("a reload with the same Nix discarded the facts gathered")
	}
	other := mkConfig(e.q.Dir, mkTarget(t, "main", []string{"*"}, nil))
	other.Nix.BinDir = t.TempDir()
	w.setConfig(other)
	if w.facts == kept {
		t.Errorf("a reload to another Nix kept the facts of the first")
	}
}

// A reload after a batch was decided, before its outcome is made
// durable, with no pusher call started: the job's look at the live
// config passed (a Load under way does not show until it is stored), the
// main loop reloaded at the top of its next round, then finished the
// job. What the old rules dropped, and the new select, must be decided
// again, not dropped.
func TestReloadAfterDecidedBeforeFinishDecidesAgain(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	e.cfg.Nix.BinDir = fakeNixStore(t)
	newCfg := mkConfig(e.q.Dir, mkTarget(t, "main", []string{"*"}, nil))
	newCfg.Nix.BinDir = e.cfg.Nix.BinDir
	f := &fakePusher{}
	w := e.worker(nil)
	w.newPusher = func(*config.Config, *config.Target) pusher.Pusher { return f }
	w.setConfig(e.cfg)
	w.state = LoadState(e.q.Dir)
	secret := build(t, "secret-1")[0]
	e.add(t, "main", secret)
	w.scan(time.Now())
	key := queue.Key("main", secret)
	s := w.idx.slots[key]
	if s == nil {
		t.Fatal("no slot")
	}
	j := w.startJob(e.cfg.Targets[0], []pick{{key, s}}, false)
	if j == nil {
		t.Fatal("no job")
	}
	res := j.run(context.Background(), w.log.WithField("target", "main"))
	if len(res.dropped) != 1 || res.cut {
		t.Fatalf("the old rules did not drop secret-1: %+v", res)
	}
	w.setConfig(newCfg)
	w.finish(res)
	if d, ok := e.q.Dropped(key, time.Time{}, 0); ok {
		t.Fatalf("dropped by the rules of before the reload: %q", d.Reason)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher calls = %q, want secret-1 pushed by the new rules\n%s", calls, e.log.String())
	}
}
