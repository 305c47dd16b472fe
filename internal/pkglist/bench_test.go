package pkglist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// What reading a list costs the hook, on the build's path: the largest
// list (MaxPaths paths) and a typical one (20 packages), from files, and
// a path that only looks at the name (every other build).
//
//	go test -run=NONE -bench=. -benchmem ./internal/pkglist
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{20, MaxPaths} {
		b.Run(fmt.Sprintf("%d paths", n), func(b *testing.B) {
			dir := b.TempDir()
			d := storepath.New(dir, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "cachix-packages-bench")
			f := storepath.New(dir, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cachix-packages-bench.list")
			var sb strings.Builder
			sb.WriteString(Magic + "\n")
			for i := 0; i < n; i++ {
				fmt.Fprintf(&sb, "%s/%032d-package-%d-1.0\n", dir, i, i)
			}
			text := sb.String()
			os.WriteFile(f.String(), []byte(text), 0o444)
			os.Mkdir(d.String(), 0o755)
			os.Symlink(f.String(), filepath.Join(d.String(), "manifest.nix"))
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Read(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("not a list", func(b *testing.B) {
		ps := []storepath.Path{{Dir: "/nix/store", Hash: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Name: "hello-2.12.1"}}
		for i := 0; i < b.N; i++ {
			Find(ps, true)
		}
	})
}
