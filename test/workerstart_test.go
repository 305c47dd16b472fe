package test

// Issue 18, defect 10: with a log.file the worker cannot open (a missing
// directory, a FIFO), validate and doctor said the config was valid, the
// hook said queued, the worker exited at once, wait timed out without a
// reason, and doctor pointed at the very file that could not be opened.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

func TestWorkerThatCannotStartSaysWhy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, why, fix string
		make           func(t *testing.T, log string)
		mend           func(t *testing.T, log string)
	}{
		{"missing directory", "does not exist", "mkdir -p ",
			func(*testing.T, string) {},
			func(t *testing.T, log string) {
				if err := os.Mkdir(filepath.Dir(log), 0o755); err != nil {
					t.Fatal(err)
				}
			}},
		{"fifo", "not a regular file", "remove it (rm ",
			func(t *testing.T, log string) {
				if err := os.Mkdir(filepath.Dir(log), 0o755); err != nil {
					t.Fatal(err)
				}
				// A FIFO of the test's own, never a real device.
				if err := syscall.Mkfifo(log, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, log string) {
				if err := os.Remove(log); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]

[log]
file = "@DIR@/logs/worker.log"
`)
			log := filepath.Join(e.Dir, "logs", "worker.log")
			tc.make(t, log)
			ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
			defer cancel()

			// validate and doctor open it as the worker will.
			_, errOut, code := e.Run(ctx, "validate")
			if code != 1 || !strings.Contains(errOut, "log.file: "+log) || !strings.Contains(errOut, tc.why) {
				t.Errorf("validate exited %d, want 1 naming log.file:\n%s", code, errOut)
			}
			out, _, code := e.Run(ctx, "doctor")
			if code != 1 || !strings.Contains(out, "log: "+log) || !strings.Contains(out, tc.fix) {
				t.Errorf("doctor exited %d, want 1 with the log's problem and its fix:\n%s", code, out)
			}

			// The hook queues; its detached worker cannot start and
			// leaves why in state.json.
			s := nixtest.Salt()
			paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "first-1.0", nil)))
			eventuallyStartError(t, e)
			out, _ = ruRun(t, e, 0, "status")
			if !strings.Contains(out, "the last worker could not start") || !strings.Contains(out, log) || !strings.Contains(out, "fix: "+tc.fix) {
				t.Errorf("status does not say why no worker runs:\n%s", out)
			}
			out, _, _ = e.Run(ctx, "doctor")
			if !strings.Contains(out, "worker: the last worker could not start") || !strings.Contains(out, tc.why) {
				t.Errorf("doctor does not say why no worker runs:\n%s", out)
			}
			// The next build's line says it.
			_, buildLog := e.Build(nixtest.List(nixtest.Drv(s, "second-1.0", nil)))
			if !strings.Contains(buildLog, "queued 1 of 1 paths") || !strings.Contains(buildLog, "but the last worker could not start") || !strings.Contains(buildLog, log) {
				t.Errorf("the hook's line does not say the worker could not start:\n%s", buildLog)
			}
			// wait says why at once, instead of waiting out its hour.
			start := time.Now()
			wctx, wcancel := context.WithTimeout(context.Background(), eventually.Left(t))
			_, errOut, code = e.Run(wctx, "wait", "--timeout", "1h")
			stillWaiting := wctx.Err() != nil
			wcancel()
			if stillWaiting {
				t.Fatalf("wait did not say the worker cannot start: still waiting (--timeout 1h) at go test's bound\n%s", errOut)
			}
			t.Logf("wait said why after %s", time.Since(start).Round(time.Millisecond))
			if code != 1 || !strings.Contains(errOut, "the worker could not start: log.file: ") || !strings.Contains(errOut, "fix: "+tc.fix) {
				t.Errorf("wait exited %d, want 1 with the reason:\n%s", code, errOut)
			}

			// Mended as it says: pushed, and the reason is gone.
			tc.mend(t, log)
			ruRun(t, e, 0, "wait", "--timeout", eventually.Left(t).String())
			got := CachePaths(t, filepath.Join(e.Dir, "cache"))
			for _, p := range paths {
				if !got[p] {
					t.Errorf("%s was not pushed", p)
				}
			}
			if out, _ := ruRun(t, e, 0, "status"); strings.Contains(out, "could not start") {
				t.Errorf("status still says the worker could not start:\n%s", out)
			}
		})
	}
}

// eventuallyStartError waits until state.json holds a start error.
func eventuallyStartError(t *testing.T, e *Env) {
	t.Helper()
	eventually.True(t, eventually.Left(t), "a start error in state.json", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.Queue, "state.json"))
		return strings.Contains(string(b), `"start_error"`)
	})
}
