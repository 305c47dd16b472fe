package test

// A running worker follows its config (issue 9 item 7): a fix, a new deny
// rule or a broken file reach the worker the hook started, which does not
// exit while entries fail. Helpers here are prefixed with rl.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// rlWriteConf rewrites the test's hook.conf in place, with NewEnv's
// placeholders.
func rlWriteConf(t *testing.T, e *Env, conf string) {
	t.Helper()
	conf = strings.NewReplacer("@DIR@", e.Dir, "@CACHIX@", standinBin).Replace(conf)
	if err := os.WriteFile(e.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rlStatus is the part of `status --json` about the worker's files.
type rlStatus struct {
	ConfigFile        string   `json:"config_file"`
	LogFile           string   `json:"log_file"`
	FilesOf           string   `json:"files_of"`
	CallerConfigFile  string   `json:"caller_config_file"`
	ConfigDiffers     []string `json:"config_differs"`
	WorkerConfigError string   `json:"worker_config_error"`
	WorkerPID         int      `json:"worker_pid"`
	Targets           []struct {
		Name    string `json:"name"`
		Failing int    `json:"failing"`
	} `json:"targets"`
}

func rlStatusJSON(t *testing.T, e *Env, args ...string) rlStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, append(args, "status", "--json")...)
	if code != 0 {
		t.Fatalf("status --json exited %d: %s", code, errOut)
	}
	var st rlStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

func rlFailing(t *testing.T, e *Env) int {
	n := 0
	for _, tg := range rlStatusJSON(t, e).Targets {
		n += tg.Failing
	}
	return n
}

// rlOneWorker returns the queue's only worker.
func rlOneWorker(t *testing.T, e *Env) int {
	t.Helper()
	pids := workerPIDs(e.Queue)
	if len(pids) != 1 {
		t.Fatalf("workers of the queue: %v, want one", pids)
	}
	return pids[0]
}

// rlSameWorker checks that one worker, pid, did all the work: the log
// has one start, its own (the worker exits once the queue is empty, so
// it may be gone by now).
func rlSameWorker(t *testing.T, e *Env, pid int) {
	t.Helper()
	log := e.Log()
	if n := strings.Count(log, "worker started"); n != 1 || !strings.Contains(log, fmt.Sprintf("pid=%d", pid)) {
		t.Errorf("%d workers started, want only the running one (pid %d), reloading:\n%s", n, pid, log)
	}
}

const rlSlowRetries = `
[queue]
dir = "@DIR@/queue"
linger = "1s"
retry_initial = "10m"
retry_max = "10m"
`

// cachix.bin fixed in hook.conf, then `retry`: the worker the hook
// started, still running with the failing entry, pushes it with the fixed
// cachix. Back-offs of 10 minutes leave the retry to `retry` alone.
// status shows the worker's config and log, also to a caller with another
// config.
func TestReloadCachixBinFixedThenRetry(t *testing.T) {
	broken := `
cache = "fixed"
allow = ["*"]

[cachix]
bin = "/nonexistent/cachix"
` + rlSlowRetries
	e := NewEnv(t, broken)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "fixme-1.0", nil)))
	eventually.True(t, eventually.Left(t), "the push to fail", func() bool { return rlFailing(t, e) == 1 })
	pid := rlOneWorker(t, e)

	rlWriteConf(t, e, strings.Replace(broken, "/nonexistent/cachix", "@CACHIX@", 1))
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if out, errOut, code := e.Run(ctx, "retry"); code != 0 {
		t.Fatalf("retry exited %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := e.Run(t.Context(), "wait", "--timeout", eventually.Left(t).String()); code != 0 {
		t.Fatalf("wait after fixing cachix.bin and retry exited %d:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
	}
	plExpectCache(t, "fixed", filepath.Join(e.Standin, "fixed"), paths, func(string) bool { return true })
	rlSameWorker(t, e, pid)
	if !strings.Contains(e.Log(), "the configuration changed: reloaded") {
		t.Errorf("the worker log does not say it reloaded:\n%s", e.Log())
	}

	// status from a caller with another config file for the same queue
	// shows the worker's files, and says they differ; a new worker,
	// since the last one has nothing left to push.
	// The last one gone (queue.linger), and the new one's push held at
	// the gate: it runs until status has looked, however slow the build.
	eventually.True(t, eventually.Left(t), "the last worker to exit", func() bool { return len(workerPIDs(e.Queue)) == 0 }, e.Log)
	open := plGate(t, e)
	defer open()
	e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "again-1.0", nil)))
	other := filepath.Join(e.Dir, "other.conf")
	body := fmt.Sprintf("cache = \"fixed\"\nallow = [\"*\"]\n[queue]\ndir = %q\n[log]\nfile = %q\n", e.Queue, filepath.Join(e.Dir, "other.log"))
	if err := os.WriteFile(other, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// The hook starts the worker, which records itself for status a
	// moment later.
	var st rlStatus
	eventually.True(t, eventually.Left(t), "status to show the new worker", func() bool {
		pids := workerPIDs(e.Queue)
		if len(pids) != 1 {
			return false
		}
		pid = pids[0]
		st = rlStatusJSON(t, e, "--config", other)
		return st.WorkerPID == pid
	}, func() string { return fmt.Sprintf("workers %v, status %+v", workerPIDs(e.Queue), st) })
	if st.FilesOf != "worker" || st.ConfigFile != e.Conf || st.LogFile != filepath.Join(e.Queue, "worker.log") || st.CallerConfigFile != other ||
		!slices.Contains(st.ConfigDiffers, "file") || !slices.Contains(st.ConfigDiffers, "log_file") || st.WorkerPID != pid {
		t.Errorf("status --config other.conf while the worker runs = %+v", st)
	}
}

// rlConf is the configuration of cache, a cachix target allowing every
// path, with retries within a second and a %s where a test puts a rule.
func rlConf(cache string) string {
	return `
cache = "` + cache + `"
allow = ["*"]
%s
[cachix]
bin = "@CACHIX@"

[queue]
dir = "@DIR@/queue"
linger = "1s"
retry_initial = "300ms"
retry_max = "1s"
`
}

// The running-worker variant of TestTrustRulesReappliedAtPushTime: deny
// = ["hello-*"] added while the hook's worker runs with hello queued (its
// pushes failing) drops hello at the worker's next attempt, with the rule
// named; the other path goes up.
func TestReloadDenyAddedWhileWorkerRuns(t *testing.T) {
	conf := rlConf("rules")
	e := NewEnv(t, fmt.Sprintf(conf, ""))
	flTrick(t, e, "fail")
	s := nixtest.Salt()
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "hello-2.12.1", nil), nixtest.Drv(s, "other-1.0", nil)))
	byName := nixtest.ByName(paths)
	eventually.True(t, eventually.Left(t), "both pushes to fail", func() bool { return rlFailing(t, e) == 2 })
	pid := rlOneWorker(t, e)

	rlWriteConf(t, e, fmt.Sprintf(conf, `deny = ["hello-*"]`))
	eventually.True(t, eventually.Left(t), "the worker to reload", func() bool { return strings.Contains(e.Log(), "the configuration changed: reloaded") })
	flTrick(t, e, "")
	eventually.True(t, eventually.Left(t), "the queue to drain", func() bool { return e.QueueEntries() == 0 })

	reasons := map[string]string{}
	for _, en := range plReadEntries(t, filepath.Join(e.Queue, "dropped")) {
		reasons[en.Path] = en.Reason
	}
	if r := reasons[byName["hello-2.12.1"]]; r != `no longer selected: deny "hello-*"` {
		t.Errorf("hello dropped with %q\nworker log:\n%s", r, e.Log())
	}
	got := CachePaths(t, filepath.Join(e.Standin, "rules"))
	if got[byName["hello-2.12.1"]] || !got[byName["other-1.0"]] {
		t.Errorf("cache holds %v; want other-1.0 only", got)
	}
	rlSameWorker(t, e, pid)
}

// A config that became invalid while the worker runs: the worker keeps
// the one it has, logs the problem (not in a loop), status shows it; once
// fixed, it loads it.
func TestReloadInvalidConfigKept(t *testing.T) {
	conf := rlConf("kept")
	e := NewEnv(t, fmt.Sprintf(conf, ""))
	flTrick(t, e, "fail")
	paths, _ := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "kept-1.0", nil)))
	eventually.True(t, eventually.Left(t), "the push to fail", func() bool { return rlFailing(t, e) == 1 })
	pid := rlOneWorker(t, e)

	rlWriteConf(t, e, fmt.Sprintf(conf, `alow = ["*"]`))
	const cannot = "the configuration changed but cannot be loaded"
	eventually.True(t, eventually.Left(t), "the worker to log the invalid config", func() bool { return strings.Contains(e.Log(), cannot) })
	seen := time.Now()
	if !strings.Contains(e.Log(), `unknown key \"alow\"`) {
		t.Errorf("the worker log does not name the problem:\n%s", e.Log())
	}
	// status reads its own (invalid) config and fails; the worker's
	// error shows with a valid one for the same queue.
	other := filepath.Join(e.Dir, "other.conf")
	if err := os.WriteFile(other, []byte(fmt.Sprintf("cache = \"kept\"\nallow = [\"*\"]\n[queue]\ndir = %q\n", e.Queue)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The worker logs the error before it saves it for status.
	var st rlStatus
	eventually.True(t, eventually.Left(t), "status to show the worker's config error", func() bool {
		st = rlStatusJSON(t, e, "--config", other)
		return strings.Contains(st.WorkerConfigError, `unknown key "alow"`)
	}, func() string { return fmt.Sprintf("status: %+v", st) })
	// Pushes go on with the old config meanwhile (a retry every second
	// at most, each a round of the worker), and the worker tries the file
	// again with a back-off (5 s, then twice as long each time), not
	// every round: after four more pushes, it has tried it at most once
	// per 5 s since it first did, and one more for the first.
	failed := flFailedPushes(e)
	eventually.True(t, eventually.Left(t), "four more pushes with the old config kept", func() bool { return flFailedPushes(e) >= failed+4 }, e.Log)
	if n, most := strings.Count(e.Log(), cannot), 2+int(time.Since(seen)/(5*time.Second)); n > most {
		t.Errorf("the invalid config was tried %d times in %s (at most %d with the back-off):\n%s", n, time.Since(seen).Round(time.Second), most, e.Log())
	}
	if got := workerPIDs(e.Queue); !slices.Equal(got, []int{pid}) {
		t.Errorf("workers: %v, want %d still running", got, pid)
	}

	// Back to the version in use.
	rlWriteConf(t, e, fmt.Sprintf(conf, ""))
	eventually.True(t, eventually.Left(t), "the worker to see the fixed config", func() bool {
		return strings.Contains(e.Log(), "the configuration is back to the version in use")
	})
	eventually.True(t, eventually.Left(t), "status to show no config error after the fix", func() bool {
		st = rlStatusJSON(t, e)
		return st.WorkerConfigError == "" && st.FilesOf == "worker"
	}, func() string { return fmt.Sprintf("status: %+v", st) })
	flTrick(t, e, "")
	e.Wait(eventually.Left(t))
	plExpectCache(t, "kept", filepath.Join(e.Standin, "kept"), paths, func(string) bool { return true })
	rlSameWorker(t, e, pid)
}
