package hook

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// BenchmarkRunListsPastTheBound is the hook on a build with outputs named
// like package lists past what one run reads (pkglist.MaxLists): "one" is
// a build of one list, "N" a build of N lists, of which the hook reads
// MaxLists and records up to maxLeftLists, for maxLeftTime, for the
// worker, two fsyncs each, on the build's path. Each run has a fresh
// queue, so every record is written. Before the time bound, on this VM:
// one 10 ms, 32 lists 25 ms, 48 (16 records) 0.17 s, 96 and 2000 (64
// records) 0.55 s.
//
//	go test -run NONE -bench RunListsPastTheBound -benchtime 20x ./internal/hook
func BenchmarkRunListsPastTheBound(b *testing.B) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix+"_") {
			b.Setenv(k, "")
		}
	}
	b.Setenv("HOME", b.TempDir())
	b.Setenv("XDG_CONFIG_HOME", "")
	b.Setenv("NIX_STORE_DIR", b.TempDir())
	var lists []string
	for i := range 2000 {
		l := fakeList(b, fmt.Sprintf("cachix-packages-%04d", i), nil, mkPath(fmt.Sprintf("app-%d", i)))
		lists = append(lists, l.String())
	}
	for _, n := range []int{1, pkglist.MaxLists, pkglist.MaxLists + 16, pkglist.MaxLists + maxLeftLists, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			env := Env{OutPaths: strings.Join(lists[:n], " ")}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "queue")
				cfg := writeFile(b, fmt.Sprintf("cache = \"mycache\"\npackage_lists = true\n[queue]\ndir = %q\n", dir))
				q, err := queue.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				l, err := q.AcquireWorker(context.Background(), 0)
				if err != nil || l == nil {
					b.Fatalf("AcquireWorker = %v, %v", l, err)
				}
				b.StartTimer()
				if st := Run(context.Background(), cfg, env, io.Discard); st != 0 {
					b.Fatalf("Run = %d", st)
				}
				b.StopTimer()
				l.Unlock()
				b.StartTimer()
			}
		})
	}
}
