package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// benchHash makes the i-th distinct 32-character nix-base32 hash.
func benchHash(i uint64) string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	b := []byte("00000000000000000000000000000000")
	for j := len(b) - 1; j >= 0 && i > 0; j-- {
		b[j] = alphabet[i%32]
		i /= 32
	}
	return string(b)
}

// BenchmarkAdd measures the enqueue rate, durable as the hook makes it
// (entry fsynced, linked, directory fsynced), with 1, 8 and 64 writers
// each queueing its own new (target, path) pair per operation:
//
//	go test -run NONE -bench Add ./queue
//
// entries/s is the rate of all writers together. bench/run.sh also
// measures the same with whole hook processes.
func BenchmarkAdd(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			q, err := Open(filepath.Join(b.TempDir(), "queue")) // made 0700 by Open, as the queue requires
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Uint64
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > uint64(b.N) {
							return
						}
						p := storepath.New("/nix/store", benchHash(i), "benchpkg-1.0")
						n, err := q.Add([]Pair{{Target: "main", Path: p}}, time.Now())
						if err == nil && n != 1 {
							err = fmt.Errorf("entry %d: added %d, want 1", i, n)
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			names, err := q.Names()
			if err != nil {
				b.Fatal(err)
			}
			if len(names) != b.N {
				b.Fatalf("%d entries in the queue, want %d", len(names), b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
		})
	}
}

// BenchmarkAddBulk measures queueing 10,000 pairs in one call, as
// `push --closure` of a system does: one sync for all.
//
//	go test -run NONE -bench AddBulk -benchtime 3x ./queue
func BenchmarkAddBulk(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		q, err := Open(filepath.Join(b.TempDir(), "queue"))
		if err != nil {
			b.Fatal(err)
		}
		pairs := make([]Pair, n)
		for j := range pairs {
			pairs[j] = Pair{Target: "main", Path: storepath.New("/nix/store", benchHash(uint64(j+1)), "benchpkg-1.0")}
		}
		b.StartTimer()
		start := time.Now()
		if got, err := q.Add(pairs, time.Now()); err != nil || got != n {
			b.Fatalf("Add = %d, %v", got, err)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "entries/s")
	}
}

// BenchmarkAddBulkFloor is the floor of BenchmarkAddBulk: the same bytes
// written to a new file, fsynced, renamed into a directory that is then
// fsynced, as durability requires.
func BenchmarkAddBulkFloor(b *testing.B) {
	const n = 10000
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for j := range n {
		p := storepath.New("/nix/store", benchHash(uint64(j+1)), "benchpkg-1.0")
		enc.Encode(&Entry{Target: "main", Path: p.String(), Queued: time.Now().UTC()})
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		f, err := os.CreateTemp(dir, "x")
		if err != nil {
			b.Fatal(err)
		}
		f.Write(buf.Bytes())
		f.Sync()
		f.Close()
		os.Rename(f.Name(), filepath.Join(dir, "y"))
		if err := syncDir(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyDone is the worker's removal of a pushed batch of 10,000
// entries queued in bulk.
func BenchmarkApplyDone(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		q, err := Open(filepath.Join(b.TempDir(), "queue"))
		if err != nil {
			b.Fatal(err)
		}
		pairs := make([]Pair, n)
		for j := range pairs {
			pairs[j] = Pair{Target: "main", Path: storepath.New("/nix/store", benchHash(uint64(j+1)), "benchpkg-1.0")}
		}
		if _, err := q.Add(pairs, time.Now()); err != nil {
			b.Fatal(err)
		}
		var done []*Entry
		names, _ := q.BulkNames()
		for _, name := range names {
			q.ReadBulk(name, func(e *Entry) { done = append(done, e) })
		}
		b.StartTimer()
		if r := q.Apply(Changes{Done: done}); len(r.Failed) > 0 {
			b.Fatal(r.Failed)
		}
	}
}

// closureQueue is a queue holding one bulk file of n pairs as `push
// --closure` queues them (facts and root with each), and that file's name.
func closureQueue(b *testing.B, n int) (*Queue, string) {
	q, err := Open(filepath.Join(b.TempDir(), "queue"))
	if err != nil {
		b.Fatal(err)
	}
	root := storepath.New("/nix/store", benchHash(1), "benchclos-root")
	pairs := make([]Pair, n)
	for j := range pairs {
		pairs[j] = Pair{Target: "main", Path: storepath.New("/nix/store", benchHash(uint64(j+1)), "benchclos-1.0"), Session: 4242,
			Facts: &Facts{NarSize: 1234, Deriver: "/nix/store/" + benchHash(uint64(j+n)) + "-benchclos-1.0.drv"}, Within: root.String()}
	}
	if got, err := q.Add(pairs, time.Now()); err != nil || got != n {
		b.Fatalf("Add = %d, %v", got, err)
	}
	names, err := q.BulkNames()
	if err != nil || len(names) != 1 {
		b.Fatalf("BulkNames = %v, %v", names, err)
	}
	return q, names[0]
}

// BenchmarkReadBulk is the worker's read of a bulk file of 10,000 pairs
// as `push --closure` queues them (facts and root with each): it reads
// it twice before a batch's pusher call, for its index and the batch.
func BenchmarkReadBulk(b *testing.B) {
	const n = 10000
	q, name := closureQueue(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := 0
		if _, err := q.ReadBulk(name, func(*Entry) { got++ }); err != nil || got != n {
			b.Fatalf("ReadBulk: %d entries, %v", got, err)
		}
	}
}

// BenchmarkKeysFirstLook is wait's first look at a queue holding a push
// --closure of 10,000 pairs, from a fresh Queue as a new process has,
// beside its floor, reading the bulk file's bytes:
//
//	go test -run NONE -bench KeysFirstLook -benchmem ./internal/queue
func BenchmarkKeysFirstLook(b *testing.B) {
	const n = 10000
	q, name := closureQueue(b, n)
	b.Run("floor", func(b *testing.B) {
		for b.Loop() {
			data, err := os.ReadFile(q.path(bulkDir, name))
			if err != nil || bytes.Count(data, []byte("\n")) != n {
				b.Fatalf("read: %v", err)
			}
		}
	})
	b.Run("keys", func(b *testing.B) {
		for b.Loop() {
			q, _ := Open(q.Dir)
			_, keys, err := q.Keys()
			if err != nil || len(keys) != n {
				b.Fatalf("Keys: %d, %v", len(keys), err)
			}
		}
	})
}
