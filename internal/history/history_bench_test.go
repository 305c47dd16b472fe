package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Time: time.Now(), Target: "main", Path: fmt.Sprintf("/nix/store/%032d-benchpkg-%d", i, i), Outcome: Pushed, Batch: n, Duration: time.Second}
	}
	return recs
}

// BenchmarkAppend is the worker's record of a pushed batch of 10,000
// paths in the history, in one write.
func BenchmarkAppend(b *testing.B) {
	recs := benchRecords(10000)
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Append(dir, MaxSize, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendFloor is its floor: the same records encoded and
// appended to a file.
func BenchmarkAppendFloor(b *testing.B) {
	recs := benchRecords(10000)
	file := filepath.Join(b.TempDir(), "h")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, r := range recs {
			enc.Encode(r)
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		f.Write(buf.Bytes())
		f.Close()
		if i%10 == 9 {
			os.Remove(file)
		}
	}
}

// BenchmarkFollow is what `wait` reads when a batch of 10,000 has been
// pushed: the history's new records.
func BenchmarkFollow(b *testing.B) {
	dir := b.TempDir()
	if err := Append(dir, MaxSize, benchRecords(10000)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fl := &Follower{file: filepath.Join(dir, File)}
		if n := len(fl.Next()); n != 10000 {
			b.Fatalf("read %d records", n)
		}
	}
}
