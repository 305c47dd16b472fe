package history

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
)

func rec(i int) Record {
	return Record{Time: time.Unix(int64(i), 0), Target: "main", Path: fmt.Sprintf("/nix/store/%032d-p", i), Outcome: Pushed, Batch: 1, Duration: time.Second}
}

func TestAppendReadRotate(t *testing.T) {
	dir := t.TempDir()
	const max = 2000
	for i := range 100 {
		if err := Append(dir, max, []Record{rec(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{File, File + ".1"} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > max {
			t.Errorf("%s is %d bytes, over the bound %d", n, fi.Size(), max)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", n, fi.Mode())
		}
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= 100 {
		t.Fatalf("read %d records; want the newest ones, bounded", len(got))
	}
	if last := got[len(got)-1]; last.Path != rec(99).Path || last.Duration != time.Second {
		t.Errorf("last record %+v", last)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Fatalf("records out of order at %d", i)
		}
	}
}

// An unreadable rotated part (a symlink planted there) hides none of the
// current file's records.
func TestReadPastAnUnreadablePart(t *testing.T) {
	dir := t.TempDir()
	if err := Append(dir, MaxSize, []Record{rec(1), rec(2)}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, File+".1")); err != nil {
		t.Fatal(err)
	}
	recs, err := Read(dir)
	if err == nil || !strings.Contains(err.Error(), File+".1") {
		t.Errorf("Read = %v, want the rotated part's error", err)
	}
	if len(recs) != 2 {
		t.Errorf("Read returned %d records, want the current file's 2", len(recs))
	}
}

func TestRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, File)); err != nil {
		t.Fatal(err)
	}
	if err := Append(dir, MaxSize, []Record{rec(1)}); err == nil || !strings.Contains(err.Error(), File) {
		t.Fatalf("Append through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); len(b) != 0 {
		t.Errorf("wrote through the symlink: %q", b)
	}
}

func TestReasonBounded(t *testing.T) {
	dir := t.TempDir()
	r := rec(1)
	r.Outcome, r.Reason = Failed, strings.Repeat("x", 100000)
	if err := Append(dir, MaxSize, []Record{r}); err != nil {
		t.Fatal(err)
	}
	got, _ := Read(dir)
	if len(got) != 1 || len(got[0].Reason) > maxReason+10 {
		t.Fatalf("got %d records, reason %d bytes", len(got), len(got[0].Reason))
	}
}

func TestFollowerAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	const max = 1000
	if err := Append(dir, max, []Record{rec(0)}); err != nil {
		t.Fatal(err)
	}
	fl := Follow(dir)
	seen := map[string]bool{}
	for i := 1; i <= 30; i++ {
		if err := Append(dir, max, []Record{rec(i)}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 { // several appends, some rotations, between reads
			for _, r := range fl.Next() {
				if seen[r.Path] {
					t.Errorf("%s read twice", r.Path)
				}
				seen[r.Path] = true
			}
		}
	}
	for _, r := range fl.Next() {
		seen[r.Path] = true
	}
	if seen[rec(0).Path] {
		t.Error("the follower read a record from before it started")
	}
	for i := 1; i <= 30; i++ {
		if !seen[rec(i).Path] {
			t.Errorf("record %d missed", i)
		}
	}
}

// A line cut short (the disk filled up in the middle of an append, or a
// crash left the file's end unwritten) costs that line only: the records
// appended after it are read, and followed.
func TestTornLineLosesOnlyItself(t *testing.T) {
	dir := t.TempDir()
	if err := Append(dir, MaxSize, []Record{rec(1)}); err != nil {
		t.Fatal(err)
	}
	fl := Follow(dir)
	f, err := os.OpenFile(filepath.Join(dir, File), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"time":"1970-01-01T00:00:02Z","target":"main","pa`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := fl.Next(); len(got) != 0 {
		t.Fatalf("the follower read %d records of a torn line", len(got))
	}
	if err := Append(dir, MaxSize, []Record{rec(3), rec(4)}); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, r := range fl.Next() {
		paths = append(paths, r.Path)
	}
	if want := []string{rec(3).Path, rec(4).Path}; !slices.Equal(paths, want) {
		t.Errorf("followed %q, want %q", paths, want)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	paths = nil
	for _, r := range got {
		paths = append(paths, r.Path)
	}
	if want := []string{rec(1).Path, rec(3).Path, rec(4).Path}; !slices.Equal(paths, want) {
		t.Errorf("read %q, want %q", paths, want)
	}
}

// A history of empty lines (damaged, or someone else's) reserves no
// record per byte: the 8 MiB read would otherwise take gigabytes
// before a line is parsed.
func TestEmptyLinesReserveNothing(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{File, File + ".1"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(strings.Repeat("\n", MaxSize)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A record's line is some 200 bytes: room for one per 64 of the
	// 8 MiB is plenty.
	const most = 2 * MaxSize / 64
	if len(got) != 0 || cap(got) > most {
		t.Errorf("read %d records, room for %d: want none, and room for at most %d", len(got), cap(got), most)
	}
}

// Read while the worker appends and rotates returns the newest record
// appended before it began: the file rotated between the opens of the
// two parts is read as one or the other, never as neither.
func TestReadDuringRotation(t *testing.T) {
	dir := t.TempDir()
	line, err := encodeRecord(nil, ptr(rec(0)))
	if err != nil {
		t.Fatal(err)
	}
	max := int64(10 * len(line)) // a rotation every 10 appends
	if err := Append(dir, max, []Record{rec(0)}); err != nil {
		t.Fatal(err)
	}
	var done atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := Append(dir, max, []Record{rec(i)}); err != nil {
				t.Error(err)
				return
			}
			done.Store(int64(i))
		}
	}()
	defer func() { close(stop); <-stopped }()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		d := done.Load()
		got, _ := Read(dir)
		if done.Load()-d >= 5 {
			// Preempted long enough for two rotations: the record may
			// have been rotated away for good.
			continue
		}
		if !slices.ContainsFunc(got, func(r Record) bool { return r.Path == rec(int(d)).Path }) {
			t.Fatalf("Read during a rotation missed record %d, the newest appended before it began (read %d records)", d, len(got))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A reason at its bound reads back whatever its bytes: JSON writes each
// of '<', '>', '&', a control character or a byte that is not UTF-8 in
// 6, and a line the reader refused as too long lost the record.
func TestLongEscapedReasonReadsBack(t *testing.T) {
	for _, s := range []string{"<", "&", "\x1b", "\xe9"} {
		dir := t.TempDir()
		r := rec(1)
		r.Outcome, r.Reason = Dropped, strings.Repeat(s, 3*maxReason)
		if err := Append(dir, MaxSize, []Record{r}); err != nil {
			t.Fatal(err)
		}
		got, err := Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Path != r.Path {
			t.Errorf("a reason of %q bytes: read %d records, want the one appended", s, len(got))
		}
	}
}

// encoding/json writes C1 controls and DEL as they are: a reason holding
// U+009B (CSI to a terminal), as Nix's stderr does in the error of a
// batch whose facts it could not give, put the raw control into
// history.jsonl, which README says holds them escaped (tail -f of the
// file then drives the terminal). They are written as \u00XX, and read
// back as they were.
func TestControlsEscapedInTheFile(t *testing.T) {
	dir := t.TempDir()
	r := rec(1)
	r.Outcome, r.Reason = Failed, "not pushed, the rules need facts Nix did not give: error: \u009b2J\u0085\x7fé\x1b[31m"
	if err := Append(dir, MaxSize, []Record{r}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range string(data) {
		if c < 0x20 && c != '\n' || c >= 0x7f && c <= 0x9f {
			t.Fatalf("history.jsonl holds control character %U: %q", c, data)
		}
	}
	got, err := Read(dir)
	if err != nil || len(got) != 1 || got[0].Reason != r.Reason {
		t.Errorf("read back %+v, %v; want the reason %q", got, err, r.Reason)
	}
}

// The C1 controls were escaped in the file, but not the bidirectional
// controls, which encoding/json writes as they are too: Nix's stderr in
// a reason (no output cutter escapes it) put a raw U+202E into
// history.jsonl, and tail -f of it read backwards. Each is written as
// \uNNNN, and read back as it was.
func TestBidiEscapedInTheFile(t *testing.T) {
	dir := t.TempDir()
	r := rec(1)
	r.Outcome, r.Reason = Failed, "error: x\u202eterces-olleh \u2066\u200f\u061c"
	if err := Append(dir, MaxSize, []Record{r}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsFunc(string(data), escape.IsControl) {
		t.Fatalf("history.jsonl holds a control character: %q", data)
	}
	got, err := Read(dir)
	if err != nil || len(got) != 1 || got[0].Reason != r.Reason {
		t.Errorf("read back %+v, %v; want the reason %q", got, err, r.Reason)
	}
}

// The reason was cut at maxReason bytes, which could fall inside a UTF-8
// character: the record then held U+FFFD for half a character. The cut
// comes before it.
func TestReasonCutKeepsUTF8Whole(t *testing.T) {
	for _, pre := range []string{"", "x", "xx", "xxx"} {
		dir := t.TempDir()
		r := rec(1)
		r.Outcome, r.Reason = Failed, pre+strings.Repeat("🙂", maxReason)
		if err := Append(dir, MaxSize, []Record{r}); err != nil {
			t.Fatal(err)
		}
		got, _ := Read(dir)
		if len(got) != 1 || strings.ContainsRune(got[0].Reason, utf8.RuneError) || !strings.HasSuffix(got[0].Reason, "🙂…") {
			t.Fatalf("reason cut to %q", got[0].Reason[max(0, len(got[0].Reason)-20):])
		}
	}
}

// The reason was cut at maxReason bytes, which could fall inside an
// escape the pusher's output cutter or %q wrote: log and status then
// showed "\x1…", half an escape that reads as other text. The cut comes
// before it.
func TestReasonCutKeepsEscapesWhole(t *testing.T) {
	for _, pre := range []string{"", "x", "xx", "xxx"} {
		dir := t.TempDir()
		r := rec(1)
		r.Outcome, r.Reason = Failed, pre+strings.Repeat(`\x1b`, maxReason)
		if err := Append(dir, MaxSize, []Record{r}); err != nil {
			t.Fatal(err)
		}
		got, _ := Read(dir)
		if len(got) != 1 || !strings.HasSuffix(got[0].Reason, `\x1b…`) {
			t.Fatalf("reason cut to %q", got[0].Reason[max(0, len(got[0].Reason)-20):])
		}
	}
}

// A batch whose records pass the bound (some 20,000 short paths fill a
// pusher call's argv) rotated once per part: each part moved the one
// before it to .1, over every earlier record, and a follower, which
// follows one rotation, missed all but the last part.
func TestAppendBatchOverTheBoundRotatesOnce(t *testing.T) {
	dir := t.TempDir()
	const max = 1000
	if err := Append(dir, max, []Record{rec(0)}); err != nil {
		t.Fatal(err)
	}
	fl := Follow(dir)
	var batch []Record
	for i := 1; i <= 30; i++ { // about 5,000 bytes: five times the bound
		batch = append(batch, rec(i))
	}
	if err := Append(dir, max, batch); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 31 || got[0].Path != rec(0).Path {
		t.Errorf("read %d records after the batch, want the earlier one and the batch's 30", len(got))
	}
	if n := len(fl.Next()); n != 30 {
		t.Errorf("the follower read %d of the batch's 30 records", n)
	}
}
