package refscan

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

func randHash(t testing.TB) string {
	t.Helper()
	b := make([]byte, hashLen)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = storepath.Base32[int(b[i])%len(storepath.Base32)]
	}
	return string(b)
}

// roomy is a budget no scan here reaches: its clock stands still a
// minute short of its deadline, so that a slow machine cannot pass it
// either.
func roomy() *Budget {
	now := time.Now()
	return &Budget{Bytes: 1 << 40, Files: 1 << 40, Until: now.Add(time.Minute), Now: func() time.Time { return now }}
}

func foundSet(hashes []string, found []bool) []string {
	var out []string
	for i, f := range found {
		if f {
			out = append(out, hashes[i])
		}
	}
	return out
}

// Every place Nix finds a reference is found: a file name, file contents
// (across each chunk boundary, whatever the offset), a symlink's target;
// the path's own hash is not reported, a hash broken by one byte is not
// one, and a symlink is not followed.
func TestScanFinds(t *testing.T) {
	hs := []string{randHash(t), randHash(t), randHash(t), randHash(t), randHash(t), randHash(t)}
	root := filepath.Join(t.TempDir(), hs[0]+"-x")
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	// hs[1] in a name, hs[2] in a link target, hs[3] straddling the first
	// chunk boundary, hs[0] (own) in contents, hs[4] with one byte
	// changed, hs[5] only in a directory the link points to.
	os.WriteFile(filepath.Join(root, "a", "f-"+hs[1]), nil, 0o644)
	os.Symlink("/nix/store/"+hs[2]+"-dep/bin", filepath.Join(root, "a", "b", "l"))
	other := filepath.Join(t.TempDir(), "elsewhere")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, hs[5]), []byte(hs[5]), 0o644)
	os.Symlink(other, filepath.Join(root, "a", "dirlink"))
	broken := []byte(hs[4])
	broken[16] = 'e' // not in nix-base32
	for off := 1; off < hashLen; off += 5 {
		body := bytes.Repeat([]byte("k"), Chunk-off)
		body = append(body, hs[3]+"/"+hs[0]+"\n"+string(broken)...)
		if err := os.WriteFile(filepath.Join(root, "a", "b", "data"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		found, err := New(hs).Scan(root, 0, roomy())
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(foundSet(hs, found), " ")
		if want := strings.Join(hs[1:4], " "); got != want {
			t.Errorf("boundary offset %d: found %s, want %s", off, got, want)
		}
	}
	// A path that is one file, or one symlink.
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"+hs[1]+"x"), 0o644)
	if found, err := New(hs).Scan(file, -1, roomy()); err != nil || !found[1] {
		t.Errorf("single file: %v, %v", found, err)
	}
	link := filepath.Join(t.TempDir(), "l")
	os.Symlink(hs[2], link)
	if found, err := New(hs).Scan(link, -1, roomy()); err != nil || !found[2] {
		t.Errorf("single symlink: %v, %v", found, err)
	}
	if _, err := New(hs).Scan(filepath.Join(t.TempDir(), "gone"), -1, roomy()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v, want ErrNotExist", err)
	}
}

// Each bound stops the scan: bytes (checked as a file is opened), entries
// (per batch), and the deadline (before anything, and per chunk).
func TestScanBudget(t *testing.T) {
	hs := []string{randHash(t)}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1000), 0o644)
	for name, b := range map[string]*Budget{
		"bytes": {Bytes: 999, Files: 100, Until: time.Now().Add(time.Minute)},
		"files": {Bytes: 1 << 20, Files: 1, Until: time.Now().Add(time.Minute)},
		"time":  {Bytes: 1 << 20, Files: 100, Until: time.Now().Add(-time.Second)},
	} {
		if _, err := New(hs).Scan(dir, -1, b); err != ErrBudget {
			t.Errorf("%s: %v, want ErrBudget", name, err)
		}
	}
}

// A crafted output (issue 18, defect 5): 302 outputs, one with a 60 MiB
// file of nothing but base32 text. The scan of that file for its 301
// siblings is one pass (with a searched-per-hash scan it held a build 15
// s), and the deadline holds inside the file: a budget of 100 ms stops
// within a chunk's read of it, however slow the machine.
func TestScanCraftedOutputBounded(t *testing.T) {
	hs := make([]string, 302)
	for i := range hs {
		hs[i] = randHash(t)
	}
	file := filepath.Join(t.TempDir(), "big")
	// Windows of base32 text that share a prefix with the hashes, so
	// that every position is worth a look to a naive scan.
	pattern := []byte(strings.Repeat(hs[1][:8], 64))
	data := bytes.Repeat(pattern, (60<<20)/len(pattern))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	found, err := New(hs).Scan(file, 0, roomy())
	took := time.Since(start)
	if err != nil || len(foundSet(hs, found)) != 0 {
		t.Fatalf("found %v, %v", foundSet(hs, found), err)
	}
	t.Logf("one pass over 60 MiB of base32 for 301 hashes: %s", took)
	// The deadline holds inside the file: on a clock that moves a
	// millisecond at each look, a deadline of 100 ms passes about the
	// hundredth of its 240 chunks, and the scan must stop there. One
	// that looked at the clock only between files would read to the
	// end and return no error.
	looks := 0
	t0 := time.Now()
	clock := func() time.Time { looks++; return t0.Add(time.Duration(looks) * time.Millisecond) }
	b := &Budget{Bytes: 1 << 40, Files: 1 << 40, Until: t0.Add(100 * time.Millisecond), Now: clock}
	if _, err = New(hs).Scan(file, 0, b); !errors.Is(err, ErrBudget) {
		t.Errorf("past its deadline of 100 ms (by a clock looked at %d times): %v, want ErrBudget", looks, err)
	}
	if looks != 101 {
		t.Errorf("the scan looked at the clock %d times; want it to stop at the first look past the deadline, the 101st", looks)
	}
	// That the deadline is looked at on the real clock, whatever the
	// machine's speed: one already past ends the scan at Scan's first
	// look at it, before the file is opened or any of the budget spent.
	b = &Budget{Bytes: 1 << 40, Files: 1 << 40, Until: time.Now().Add(-time.Millisecond)}
	_, err = New(hs).Scan(file, 0, b)
	if !errors.Is(err, ErrBudget) {
		t.Errorf("a scan past its deadline = %v, want ErrBudget", err)
	}
	if b.Bytes != 1<<40 || b.Files != 1<<40 {
		t.Errorf("a scan past its deadline spent %d bytes and %d files of its budget, want none", 1<<40-b.Bytes, 1<<40-b.Files)
	}
}

// The scan's cost per byte on the worst input (base32 text throughout)
// and on text with no base32 run, against reading the same bytes.
func BenchmarkMark(b *testing.B) {
	hs := make([]string, 302)
	for i := range hs {
		hs[i] = randHash(b)
	}
	s := New(hs)
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"base32", bytes.Repeat([]byte(hs[1][:8]), Chunk/8)},
		{"zeros", make([]byte, Chunk)},
	} {
		b.Run(in.name, func(b *testing.B) {
			sc := &scan{s: s, skip: -1, found: make([]bool, len(hs)), left: len(hs)}
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				mark(sc, in.data)
			}
		})
	}
}
