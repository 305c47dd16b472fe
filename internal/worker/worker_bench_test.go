package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/sirupsen/logrus"
)

// BenchmarkDrainClosure is a `worker --once` over a bulk file of 10,000
// pairs as `push --closure` queues them (facts and root with each), with
// a pusher that returns at once: the worker's own part of a drain, from
// the lock to the entries removed and the history and record written:
//
//	go test -run NONE -bench DrainClosure ./internal/worker
func BenchmarkDrainClosure(b *testing.B) {
	const n = 10000
	store := b.TempDir()
	b.Setenv("NIX_STORE_DIR", store)
	root := mkPath("benchclos-root")
	pairs := make([]queue.Pair, n)
	for j := range pairs {
		p := root
		if j > 0 {
			p = mkPath(fmt.Sprintf("benchclos-%d-1.0", j))
		}
		if err := os.WriteFile(p.String(), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		pairs[j] = queue.Pair{Target: "main", Path: p, Session: 4242, Within: root.String(),
			Facts: &queue.Facts{NarSize: 1234, Deriver: p.String() + ".drv"}}
	}
	pairs[0].Within = ""
	t := &config.Target{Name: "main", Cache: "main", Allow: []string{"benchclos-*"}, ClosureDeny: config.ClosurePush}
	var err error
	if t.Rules, err = filter.Compile(t.Allow, nil); err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		q, err := queue.Open(filepath.Join(b.TempDir(), "queue"))
		if err != nil {
			b.Fatal(err)
		}
		if got, err := q.Add(pairs, time.Now().Add(-time.Minute)); err != nil || got != n {
			b.Fatalf("Add = %d, %v", got, err)
		}
		cfg := mkConfig(q.Dir, t)
		cfg.Queue.Batch = config.DefaultBatch
		cfg.Log.Level = "info"
		cfg.Queue.RememberPushed = time.Hour
		w := New(cfg, q, log)
		// fakePusher returns at once: what is timed around it is the
		// worker's.
		p := &fakePusher{}
		w.pushers["main"] = p
		b.StartTimer()
		if err := w.Run(context.Background(), Once); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if calls, _ := p.Calls(); len(calls) != 1 || len(calls[0]) != 1 {
			b.Fatalf("pusher calls %v, want 1 with the root", calls)
		}
		if names, _ := q.Names(); len(names) != 0 {
			b.Fatalf("%d entries left", len(names))
		}
		b.StartTimer()
	}
}
