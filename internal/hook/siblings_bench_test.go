package hook

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// BenchmarkSiblingScan302 is the crafted build of issue 18 (defect 5):
// 302 outputs, one a 60 MiB file of base32 text made of pieces of its
// siblings' hash parts. "scan" is the hook's scan of that output for its
// 301 siblings, deadline lifted (so the pass is measured to the end);
// "read" is the
// floor, reading the same file once into io.Discard. Both report MB/s of
// the 60 MiB file.
//
//	go test -run NONE -bench SiblingScan302 -benchtime 5x ./internal/hook
func BenchmarkSiblingScan302(b *testing.B) {
	b.Setenv("NIX_STORE_DIR", filepath.Join(b.TempDir(), "store"))
	paths := []storepath.Path{mkPath("crafted-1.0"), mkPath("crafted-1.0-doc")}
	for i := range 300 {
		paths = append(paths, mkPath(fmt.Sprintf("crafted-1.0-o%d", i)))
	}
	if err := os.MkdirAll(storepath.StoreDir(), 0o755); err != nil {
		b.Fatal(err)
	}
	var piece []byte
	for _, p := range paths[1:] {
		piece = append(piece, p.Hash[:8]...)
		piece = append(piece, p.Hash[24:]...)
	}
	const size = 60 << 20
	data := bytes.Repeat(piece, size/len(piece)+1)[:size]
	if err := os.WriteFile(paths[0].String(), data, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, p := range paths[1:] {
		if err := os.WriteFile(p.String(), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			refs, err := referencedIn(paths[0].String(), paths[1:], &scanBudget{Bytes: 1 << 40, Files: 1 << 40, Until: time.Now().Add(time.Hour)})
			if err != nil || len(refs) != 0 {
				b.Fatalf("refs %v, %v", refs, err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, err := os.Open(paths[0].String())
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, f)
			f.Close()
		}
	})
}
