package test

// Issue 9: no secret reaches a command line. Every process's
// /proc/PID/cmdline is readable by every user; the environment
// (/proc/PID/environ) is not, which is why the token goes there.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// argvSampler reads the command line of every process on the machine
// every few milliseconds, remembering those that hold a secret and those
// that match a pattern (to show that the pushers were seen at all).
type argvSampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	leaks   []string
	matched map[string]bool
	passes  int
}

func sampleArgv(secrets, patterns []string) *argvSampler {
	s := &argvSampler{stop: make(chan struct{}), done: make(chan struct{}), matched: map[string]bool{}}
	self := strconv.Itoa(os.Getpid())
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			dirs, _ := os.ReadDir("/proc")
			for _, d := range dirs {
				if _, err := strconv.Atoi(d.Name()); err != nil || d.Name() == self {
					continue
				}
				b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
				if err != nil || len(b) == 0 {
					continue
				}
				line := string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))
				s.mu.Lock()
				for _, sec := range secrets {
					if leak := d.Name() + ": " + line; strings.Contains(line, sec) && !slices.Contains(s.leaks, leak) {
						s.leaks = append(s.leaks, leak)
					}
				}
				for _, p := range patterns {
					if strings.Contains(line, p) {
						s.matched[p] = true
					}
				}
				s.mu.Unlock()
			}
			s.mu.Lock()
			s.passes++
			s.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return s
}

// seen says whether a command line holding pattern was seen yet.
func (s *argvSampler) seen(pattern string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.matched[pattern]
}

func (s *argvSampler) Stop() (leaks []string, matched map[string]bool, passes int) {
	close(s.stop)
	<-s.done
	return s.leaks, s.matched, s.passes
}

// A store URI with a password is refused before anything runs: validate
// exits 1, the hook queues nothing and says why without the password, and
// no process ever has it in its command line. The token, given to cachix
// in its environment, is in no command line either while the worker
// pushes with the stand-in and nix copy (sampled from /proc).
func TestTrustSecretsNotInArgv(t *testing.T) {
	password := "hunter2-" + nixtest.Salt()
	e := NewEnv(t, `
store = "https://nix:`+password+`@127.0.0.1:9/cache"
allow = ["*"]
`)
	sampler := sampleArgv([]string{password}, nil)
	_, log := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "pw-1.0", nil)))
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	_, errOut, code := e.Run(ctx, "validate")
	// Nothing queued and no worker now means no nix copy ever runs (the
	// hook queues and starts the worker before the build returns).
	if n, pids := e.QueueEntries(), workerPIDs(e.Queue); n != 0 || len(pids) != 0 {
		t.Errorf("the hook queued %d entries and started workers %v with a refused config", n, pids)
	}
	leaks, _, passes := sampler.Stop()
	if code != 1 || !strings.Contains(errOut, e.Conf+`:2: store: "https://nix:REDACTED@127.0.0.1:9/cache" carries a password`) || !strings.Contains(errOut, "netrc-file") {
		t.Errorf("validate exited %d:\n%s", code, errOut)
	}
	if !strings.Contains(log, "not queueing anything, the configuration is invalid") {
		t.Errorf("the build log does not say the config is refused:\n%s", log)
	}
	for what, text := range map[string]string{"validate": errOut, "build log": log, "worker log": e.Log()} {
		if strings.Contains(text, password) {
			t.Errorf("the password is in the %s:\n%s", what, text)
		}
	}
	if len(leaks) > 0 {
		t.Errorf("the password was in command lines (%d passes):\n%s", passes, strings.Join(leaks, "\n"))
	}

	// A valid config: a Cachix target with a token, and a store target.
	e = NewEnv(t, `
cache = "tok"
allow = ["*"]

[[target]]
name = "files"
store = "file://@DIR@/cache"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
auth_token_file = "@DIR@/token"
`)
	token := "cfh-token-" + nixtest.Salt()
	if err := os.WriteFile(filepath.Join(e.Dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The stand-in's push waits at the gate until the sampler has seen
	// it running.
	open := plGate(t, e)
	sampler = sampleArgv([]string{token}, []string{standinBin + " push", " copy --to file://"})
	paths, _ := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "tk-1.0", nil)))
	eventually.True(t, eventually.Left(t), "the sampler to see cachix push running (held at the gate)", func() bool { return sampler.seen(standinBin + " push") })
	open()
	e.Wait(eventually.Left(t))
	// wait returns once the queue drained; the worker lingers, and
	// what it runs until it exits must be sampled too.
	e.WaitWorkersGone(eventually.Left(t))
	leaks, matched, passes := sampler.Stop()
	if len(leaks) > 0 {
		t.Errorf("the token was in command lines:\n%s", strings.Join(leaks, "\n"))
	}
	if !matched[standinBin+" push"] {
		t.Errorf("cachix push was never seen running in %d passes over /proc: the check proves nothing", passes)
	}
	if !matched[" copy --to file://"] {
		t.Logf("nix copy finished between samples (%d passes); cachix push was seen", passes)
	}
	plExpectCache(t, "tok", filepath.Join(e.Standin, "tok"), paths, func(string) bool { return true })
	if inv := e.Invocations(); len(inv) == 0 || inv[0].TokenSHA256 == "" {
		t.Errorf("the stand-in got no token: %+v", inv)
	}
}
