package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// status printed what it read from state.json, the config and the
// history as it was: a worker's start and config errors (which name
// files and quote what failed), a queue error, a slow upstream's name
// and reason, the worker's files and a store target's destination could
// carry a terminal's escapes, or a newline that forges a line of its
// own. Each is escaped, as log and doctor escape theirs.
func TestStatusEscapesWhatItRead(t *testing.T) {
	q, dir := testQueue(t)
	const evil = "\x1b]0;owned\x07\x9b2J\u009b2J\nmain (cachix main): 0 pending"
	store := filepath.Join(dir, "cache\x9b2J")
	file := filepath.Join(dir, "hook.conf")
	mainConf(t, file, q.Dir, "")
	// A store directory whose name is not UTF-8 loads from the
	// environment (only its control characters are refused).
	t.Setenv(config.EnvName("cache"), "")
	t.Setenv(config.EnvName("store"), "file://"+store)
	if err := os.WriteFile(file, []byte("name = \"main\"\nallow = [\"*\"]\n[queue]\ndir = \""+q.Dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	name := c.Targets[0].Name
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatal(lock, err)
	}
	defer lock.Unlock()
	st := &worker.State{
		Targets: map[string]*worker.TargetState{name: {QueueError: "removing " + evil}},
		Worker: &worker.WorkerInfo{PID: os.Getpid(), Fingerprint: worker.Fingerprint{File: file + evil, Env: []string{config.EnvName("deny") + evil}, EnvDigest: "1"},
			LogFile: "/var/log/x" + evil, ConfigError: "reading " + evil, Loaded: time.Now()},
		StartError:    &worker.StartError{Time: time.Now(), Error: "log.file: " + evil, Fix: "mkdir " + evil},
		SlowUpstreams: map[string]worker.SlowUpstream{"https://up" + evil: {Why: "no answer: " + evil, Time: time.Now()}},
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q.Dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := history.Record{Time: time.Now(), Target: name, Path: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x" + evil, Outcome: history.Failed, Reason: "boom"}
	if err := history.Append(q.Dir, history.MaxSize, []history.Record{rec}); err != nil {
		t.Fatal(err)
	}
	s, err := collectStatus(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.print(&out)
	if strings.ContainsAny(out.String(), "\x1b\x07\u009b") || !utf8.ValidString(out.String()) || strings.Contains(out.String(), "\nmain (cachix main)") {
		t.Errorf("status printed a control character or a forged line:\n%q", out.String())
	}
	for _, want := range []string{`cache\x9b2J`, `\x1b]0;owned\x07`, `\u009b2J`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %s:\n%s", want, out.String())
		}
	}
}
