package worker

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// BenchmarkForgetDrops is the look in dropped/ that follows every pushed
// batch, with 10,000 drops there (none of the batch's: the usual case),
// for a batch of one path (a build's) and one of a thousand:
//
//	go test -run NONE -bench ForgetDrops ./internal/worker
func BenchmarkForgetDrops(b *testing.B) {
	b.Setenv("NIX_STORE_DIR", b.TempDir())
	q, err := queue.Open(filepath.Join(b.TempDir(), "queue"))
	if err != nil {
		b.Fatal(err)
	}
	dropped := filepath.Join(q.Dir, "dropped")
	if err := os.Mkdir(dropped, 0o700); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		k := queue.Key("main", mkPath(fmt.Sprintf("gone-%d", i)))
		if err := os.WriteFile(filepath.Join(dropped, k), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	log := logrus.New()
	log.Out = io.Discard
	w := New(mkConfig(q.Dir), q, log)
	for _, n := range []int{1, 256, 1000} {
		pushed := make([]*queue.Entry, n)
		for i := range pushed {
			pushed[i] = queue.Stub(queue.Key("main", mkPath(fmt.Sprintf("up-%d", i))), "")
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				w.forgetDrops(log.WithField("target", "main"), pushed)
			}
		})
	}
}
