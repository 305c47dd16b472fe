package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// writeWorkerState writes state.json as a worker records itself.
func writeWorkerState(t *testing.T, dir string, wi *worker.WorkerInfo) {
	t.Helper()
	b, err := json.Marshal(&worker.State{Targets: map[string]*worker.TargetState{}, Worker: wi})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// status shows the config and log files the running worker uses, as it
// recorded them, not the caller's, and says how they differ.
func TestStatusShowsWorkersFiles(t *testing.T) {
	q, dir := testQueue(t)
	conf := func(name, log string) string {
		file := filepath.Join(dir, name)
		mainConf(t, file, q.Dir, fmt.Sprintf("[log]\nfile = %q\n", log))
		return file
	}
	theirs := conf("worker.conf", filepath.Join(dir, "theirs.log"))
	mine := conf("mine.conf", filepath.Join(dir, "mine.log"))
	c, err := config.Load(mine)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatal(lock, err)
	}
	defer func() {
		if lock != nil {
			lock.Unlock()
		}
	}()
	collect := func() (*queueStatus, string) {
		t.Helper()
		st, err := collectStatus(c, q)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		st.print(&out)
		return st, out.String()
	}

	// Another file and log.
	wi := &worker.WorkerInfo{PID: os.Getpid(), Fingerprint: worker.FingerprintOf(theirs), LogFile: filepath.Join(dir, "theirs.log"), Loaded: time.Now()}
	writeWorkerState(t, q.Dir, wi)
	st, out := collect()
	if st.FilesOf != "worker" || st.ConfigFile != theirs || st.LogFile != wi.LogFile || st.CallerConfigFile != mine ||
		!slices.Equal(st.ConfigDiffers, []string{"file", "log_file"}) || st.WorkerPID != os.Getpid() {
		t.Errorf("status = %+v", st)
	}
	for _, want := range []string{
		"config " + theirs + " (the running worker's; yours is " + mine + ")",
		"log " + wi.LogFile + " (the running worker's; yours is " + filepath.Join(dir, "mine.log") + ")",
		fmt.Sprintf("worker running (pid %d)", os.Getpid()),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// The same file, changed since the worker loaded it; then changed
	// into one it cannot load.
	wi.Fingerprint = worker.FingerprintOf(mine)
	wi.Digest = "0123"
	wi.LogFile = c.Log.File
	writeWorkerState(t, q.Dir, wi)
	if st, out = collect(); !slices.Equal(st.ConfigDiffers, []string{"content"}) || !strings.Contains(out, mine+" changed since the worker loaded it") {
		t.Errorf("status = %+v\n%s", st, out)
	}
	wi.ConfigError = `unknown key "alow"`
	writeWorkerState(t, q.Dir, wi)
	if st, out = collect(); st.WorkerConfigError != wi.ConfigError || !strings.Contains(out, `cannot load the changed configuration and keeps the one loaded at `) {
		t.Errorf("status = %+v\n%s", st, out)
	}

	// Other overrides in the worker's environment.
	wi.Fingerprint = worker.FingerprintOf(mine)
	wi.ConfigError = ""
	wi.Env, wi.EnvDigest = []string{config.EnvName("deny")}, "4567"
	writeWorkerState(t, q.Dir, wi)
	if st, out = collect(); !slices.Equal(st.ConfigDiffers, []string{"environment"}) || !strings.Contains(out, "other CACHIX_FILTER_HOOK_* overrides than yours (its own: CACHIX_FILTER_HOOK_DENY)") {
		t.Errorf("status = %+v\n%s", st, out)
	}

	// A record left by a worker that is gone is not the running one's.
	wi.PID = 1 << 30
	writeWorkerState(t, q.Dir, wi)
	if st, _ = collect(); st.FilesOf != "caller" || st.ConfigFile != mine || len(st.ConfigDiffers) != 0 {
		t.Errorf("status with a dead worker's record = %+v", st)
	}
	// No worker running: the caller's files.
	wi.PID = os.Getpid()
	writeWorkerState(t, q.Dir, wi)
	lock.Unlock()
	lock = nil
	if st, out = collect(); st.FilesOf != "caller" || st.ConfigFile != mine || !strings.Contains(out, "config "+mine+"\n") {
		t.Errorf("status without a worker = %+v\n%s", st, out)
	}
}
