package pushed

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// randHash returns a random valid nix-base32 hash string.
func randHash(r *rand.Rand) string {
	b := make([]byte, storepath.HashLen)
	for i := range b {
		b[i] = storepath.Base32[r.IntN(len(storepath.Base32))]
	}
	return string(b)
}

func mustHash(t testing.TB, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseHash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[Hash]string{}
	for i := 0; i < 20000; i++ {
		s := randHash(r)
		h := mustHash(t, s)
		if prev, ok := seen[h]; ok && prev != s {
			t.Fatalf("%s and %s decode to the same hash", prev, s)
		}
		seen[h] = s
	}
	for _, bad := range []string{"", "short", "e0000000000000000000000000000000", "00000000000000000000000000000000x"} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
	// Every bit of the 32 characters lands in the 20 bytes: two hashes
	// differing only in the last character differ.
	a := mustHash(t, "00000000000000000000000000000000")
	b := mustHash(t, "00000000000000000000000000000001")
	if a == b {
		t.Fatal("the last character is lost")
	}
}

func TestAddHas(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if r, err := OpenRead(dir, "t", 0); r != nil || err != nil {
		t.Fatalf("missing record: got %v, %v; want empty", r, err)
	}
	w, err := OpenWrite(dir, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rnd := rand.New(rand.NewPCG(3, 4))
	var in, out []Hash
	for i := 0; i < 5000; i++ {
		in = append(in, mustHash(t, randHash(rnd)))
		out = append(out, mustHash(t, randHash(rnd)))
	}
	if err := w.Add(in, now); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRead(dir, "t", 0)
	if err != nil || r == nil {
		t.Fatalf("OpenRead: %v, %v", r, err)
	}
	defer r.Close()
	for i := range in {
		if !r.Has(in[i], now) {
			t.Fatalf("recorded hash %d not found", i)
		}
		if r.Has(out[i], now) {
			t.Fatalf("hash %d never recorded but found", i)
		}
	}
	if n := r.Count(); n != len(in) {
		t.Fatalf("Count = %d, want %d", n, len(in))
	}
	// Another destination's record is another file.
	if o, _ := OpenRead(dir, "other", 0); o.Has(in[0], now) {
		t.Fatal("a record of another destination has the path")
	}
	// Adding again changes nothing.
	if err := w.Add(in[:10], now); err != nil {
		t.Fatal(err)
	}
	if n := r.Count(); n != len(in) {
		t.Fatalf("Count after re-adding = %d, want %d", n, len(in))
	}
}

// A bucket that is full forgets its oldest slot; the file never grows.
func TestBoundedEviction(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWrite(dir, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rnd := rand.New(rand.NewPCG(5, 6))
	// Hashes that all fall in bucket 7.
	var same []Hash
	for len(same) < slotsPer+3 {
		h := mustHash(t, randHash(rnd))
		binary.LittleEndian.PutUint32(h[:4], 7)
		same = append(same, h)
	}
	now := time.Now()
	for i, h := range same {
		if err := w.Add([]Hash{h}, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Hour)
	for i, h := range same {
		want := i >= 3 // the three oldest were forgotten
		if got := w.Has(h, later); got != want {
			t.Errorf("hash %d: Has = %v, want %v", i, got, want)
		}
	}
	// Recorded again, the oldest becomes the newest: the next new hash
	// of the bucket forgets another. A hash twice in one call takes one
	// slot.
	refreshed, extra := same[3], mustHash(t, randHash(rnd))
	binary.LittleEndian.PutUint32(extra[:4], 7)
	if err := w.Add([]Hash{refreshed, refreshed}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]Hash{extra}, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i, h := range append(same[3:], extra) {
		want := i != 1 // same[4], now the oldest, was forgotten
		if got := w.Has(h, later); got != want {
			t.Errorf("after the refresh, hash %d: Has = %v, want %v", i+3, got, want)
		}
	}
	fi, err := os.Stat(File(dir, "t"))
	if err != nil || fi.Size() != fileSize {
		t.Fatalf("file size %v, %v; want %d", fi.Size(), err, fileSize)
	}
	// Many more paths than the capacity: still the same size.
	var many []Hash
	for i := 0; i < Capacity+Capacity/4; i++ {
		many = append(many, mustHash(t, randHash(rnd)))
	}
	if err := w.Add(many, now); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(File(dir, "t")); fi.Size() != fileSize {
		t.Fatalf("file grew to %d", fi.Size())
	}
	if n := w.Count(); n > Capacity {
		t.Fatalf("Count %d above capacity %d", n, Capacity)
	}
}

// README ("Never pushed twice") and docs/design.md give the record's
// size and capacity in figures: change them with these.
func TestRecordSizeAsDocumented(t *testing.T) {
	if fileSize != 8<<20+4<<10 || Capacity != 262144 || buckets != 1<<15 || slotsPer != 8 || bucketSize != 256 {
		t.Errorf("a record is now %d bytes (%d buckets of %d slots, %d bytes each) holding %d paths; the docs say 8 MiB and a 4 KiB header, 2^15 buckets of 8 slots, 256-byte buckets, 262,144 paths: update README.md and docs/design.md",
			fileSize, buckets, slotsPer, bucketSize, Capacity)
	}
}

// A torn or damaged slot reads as absent: at worst, a path is pushed
// again. It never reads as another path.
func TestDamagedSlotsAndFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWrite(dir, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := mustHash(t, "0c6kzph7l0dcbbvlh5pi0kmxjh3fr6pc")
	now := time.Now()
	if err := w.Add([]Hash{h}, now); err != nil {
		t.Fatal(err)
	}
	w.Close()
	f, err := os.OpenFile(File(dir, "t"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(headerSize) + h.bucket()*bucketSize
	// Flip each byte of the slot in turn: every change is caught.
	for i := int64(0); i < slotSize; i++ {
		var b [1]byte
		f.ReadAt(b[:], off+i)
		f.WriteAt([]byte{b[0] ^ 0x40}, off+i)
		r, _ := OpenRead(dir, "t", 0)
		if r.Has(h, now) {
			t.Fatalf("slot with byte %d changed still counts", i)
		}
		r.Close()
		f.WriteAt(b[:], off+i)
	}
	// A damaged header: empty for readers, reset by the worker.
	f.WriteAt([]byte("garbage!"), 0)
	f.Close()
	if r, err := OpenRead(dir, "t", 0); r != nil || err != nil {
		t.Fatalf("damaged record read as %v, %v", r, err)
	}
	w, err = OpenWrite(dir, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if w.Has(h, now) || w.Count() != 0 {
		t.Fatal("a reset record still has paths")
	}
	w.Close()
	// A truncated file (a crash during reset, a full disk) is not one.
	if err := os.Truncate(File(dir, "t"), 100); err != nil {
		t.Fatal(err)
	}
	if r, _ := OpenRead(dir, "t", 0); r != nil {
		t.Fatal("a truncated file reads as a record")
	}
}

// A symlink or FIFO planted where the record goes is never followed or
// opened in a blocking way.
func TestNoSymlinkNoFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, Dir), 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, File(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if r, err := OpenRead(dir, "link", 0); r != nil || err == nil {
		t.Fatalf("OpenRead followed a symlink: %v, %v", r, err)
	}
	w, err := OpenWrite(dir, "link", 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Fatal("the symlink's target was written")
	}
	if err := mkfifo(File(dir, "fifo")); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := OpenRead(dir, "fifo", 0)
		r.Close()
		if err == nil {
			w, werr := OpenWrite(dir, "fifo", 0)
			w.Close()
			err = werr
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a FIFO in place of the record: %v", err)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("opening a FIFO record blocked")
	}
}

func TestMaxAgeAndClockSteps(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWrite(dir, "t", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := mustHash(t, "1c6kzph7l0dcbbvlh5pi0kmxjh3fr6pc")
	now := time.Now()
	if err := w.Add([]Hash{h}, now); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{now, true},
		{now.Add(23 * time.Hour), true},
		{now.Add(25 * time.Hour), false},            // too old: the cache may have dropped it
		{now.Add(-23 * time.Hour), true},            // clock stepped back a little: still counts
		{now.Add(-25 * time.Hour), false},           // stamped more than max age ahead: absent
		{now.Add(-4 * 365 * 24 * time.Hour), false}, // a worker that ran years ahead
	} {
		if got := w.Has(h, c.at); got != c.want {
			t.Errorf("Has at %v = %v, want %v", c.at.Sub(now), got, c.want)
		}
	}
}

func TestForget(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	h := mustHash(t, "2c6kzph7l0dcbbvlh5pi0kmxjh3fr6pc")
	for _, k := range []string{"a", "b"} {
		w, err := OpenWrite(dir, k, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Add([]Hash{h}, now)
		w.Close()
	}
	if n, err := Forget(dir, "a"); n != 1 || err != nil {
		t.Fatalf("Forget a: %d, %v", n, err)
	}
	if r, _ := OpenRead(dir, "a", 0); r.Has(h, now) {
		t.Fatal("forgotten record still has the path")
	}
	if r, _ := OpenRead(dir, "b", 0); !r.Has(h, now) {
		t.Fatal("Forget a forgot b")
	}
	if n, err := Forget(dir, ""); n != 1 || err != nil {
		t.Fatalf("Forget all: %d, %v", n, err)
	}
}

// BenchmarkHas measures a lookup (open, one read, close, as the hook does)
// with an empty record and with 100,000 recorded paths: the cost must
// not grow with the record.
func BenchmarkHas(b *testing.B) {
	for _, n := range []int{0, 100000} {
		b.Run(fmt.Sprintf("recorded=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			w, err := OpenWrite(dir, "t", 0)
			if err != nil {
				b.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(7, 8))
			hs := make([]Hash, n)
			for i := range hs {
				hs[i] = mustHash(b, randHash(rnd))
			}
			if err := w.Add(hs, time.Now()); err != nil {
				b.Fatal(err)
			}
			w.Close()
			probe := mustHash(b, randHash(rnd))
			now := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, _ := OpenRead(dir, "t", 0)
				r.Has(probe, now)
				r.Close()
			}
		})
	}
}

// A pushed/ directory that is not the worker's own (another owner, or
// open to others) is refused, not written into.
func TestForeignRecordDirRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, Dir), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, Dir), 0o777)
	if w, err := OpenWrite(dir, "t", 0); err == nil {
		w.Close()
		t.Fatal("a world-writable pushed/ was used")
	}
	os.Chmod(filepath.Join(dir, Dir), 0o700)
	if os.Geteuid() == 0 {
		os.Chown(filepath.Join(dir, Dir), 65534, 65534)
		if w, err := OpenWrite(dir, "t", 0); err == nil {
			w.Close()
			t.Fatal("a pushed/ owned by another user was used")
		}
	}
}

// BenchmarkAdd is the worker's record of a pushed batch of 10,000 paths.
func BenchmarkAdd(b *testing.B) {
	rnd := rand.New(rand.NewPCG(9, 10))
	hs := make([]Hash, 10000)
	for i := range hs {
		hs[i] = mustHash(b, randHash(rnd))
	}
	dir := b.TempDir()
	w, err := OpenWrite(dir, "t", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Add(hs, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
