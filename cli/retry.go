package cli

import (
	"fmt"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

func runRetry(e *env) int {
	c, q, ok := e.openQueue()
	if !ok {
		return 1
	}
	if err := q.RequestRetry(); err != nil {
		e.errorf("%v", err)
		return 1
	}
	if err := worker.EnsureRunning(c, q); err != nil {
		e.errorf("starting a worker: %v", err)
		return 1
	}
	// A running worker reads its config file again before it retries,
	// but not the caller's file or environment if they are others.
	if running, _ := q.WorkerRunning(); running {
		if wi := worker.LoadState(q.Dir).Worker; wi != nil && processAlive(wi.PID) && wi.File != c.File {
			e.errorf("note: the running worker (pid %d) retries with %s, not %s", wi.PID, configName(wi.File), configName(c.File))
		}
	}
	fmt.Fprintln(e.stdout, "failing entries will be retried now")
	return 0
}
