package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// A pin waiting with no entry left (its root pushed, the worker gone
// before it made the pin) is work left: doctor said "not running, nothing
// to push".
func TestDoctorCountsPinsAsWorkLeft(t *testing.T) {
	q, file := mainQueue(t)
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	if _, err := q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e, c, _ := loadedEnv(t, file)
	d := &doctor{e: e, ctx: e.ctx, cfg: c}
	d.checkQueue()
	var worker *check
	for i := range d.checks {
		if d.checks[i].Name == "worker" {
			worker = &d.checks[i]
		}
	}
	if worker == nil || worker.Level != checkProblem || !strings.Contains(worker.Message, "1 pin queued and no worker running") {
		t.Errorf("worker check = %+v, want a problem: the pin is queued and no worker runs", worker)
	}
}
