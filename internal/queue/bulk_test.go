package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// countSyncs counts the fsyncs Add makes during f.
func countSyncs(t *testing.T, f func()) int {
	t.Helper()
	n := 0
	syncs = func(string) error { n++; return nil }
	defer func() { syncs = nil }()
	f()
	return n
}

func manyPairs(n int, prefix string) []Pair {
	pairs := make([]Pair, n)
	for i := range pairs {
		pairs[i] = Pair{Target: "main", Path: mkPath(fmt.Sprintf("%s-%d", prefix, i))}
	}
	return pairs
}

// Queueing many pairs costs a constant number of syncs, not one per
// entry (issue 12: an fsync per entry made `push --closure` of a system
// take 6-8 s); a single pair keeps its two (entry, then directory). The
// first bulk file of a queue makes bulk/, and syncs the queue directory.
func TestAddSyncsConstant(t *testing.T) {
	for _, c := range []struct {
		n, maxSyncs int
	}{
		{1, 2},
		{2, 3},
		{100, 3},
		{10000, 3},
	} {
		q := openQ(t)
		pairs := manyPairs(c.n, "p")
		var added int
		n := countSyncs(t, func() {
			var err error
			if added, err = q.Add(pairs, time.Now()); err != nil {
				t.Fatal(err)
			}
		})
		if added != c.n {
			t.Fatalf("%d pairs: added %d", c.n, added)
		}
		if n > c.maxSyncs || n == 0 {
			t.Errorf("%d pairs: %d syncs, want 1 to %d", c.n, n, c.maxSyncs)
		}
		// Every entry reads back as its own pair.
		entries, bad, err := q.List()
		if err != nil || len(bad) > 0 || len(entries) != c.n {
			t.Fatalf("%d pairs: List = %d entries, %v, %v", c.n, len(entries), bad, err)
		}
		want := map[string]bool{}
		for _, p := range pairs {
			want[Key(p.Target, p.Path)] = true
		}
		for _, e := range entries {
			if !want[e.Key()] || Key(e.Target, mustParse(t, e.Path)) != e.Key() {
				t.Fatalf("entry %s holds %s", e.Key(), e.Path)
			}
			delete(want, e.Key())
		}
		if got := ls(t, q.path(tmpDir)); len(got) != 0 {
			t.Errorf("tmp/ not empty after Add: %q", got)
		}
	}
}

// The entries of a bulk Add share one file; the worker's changes to one
// of them (retry state, removal, drop) leave the others as they were, and
// a pair queued again keeps its retry state for everyone who reads it.
func TestAddBulkEntriesIndependent(t *testing.T) {
	q := openQ(t)
	pairs := manyPairs(50, "s")
	if n, err := q.Add(pairs, time.Now()); err != nil || n != 50 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	if names := ls(t, q.path(entriesDir)); len(names) != 0 {
		t.Fatalf("a bulk Add made %d files in entries/, want none", len(names))
	}
	if names := ls(t, q.path(bulkDir)); len(names) != 1 {
		t.Fatalf("a bulk Add of 50 pairs made %d bulk files, want 1", len(names))
	}
	k0, k1, k2 := Key("main", pairs[0].Path), Key("main", pairs[1].Path), Key("main", pairs[2].Path)
	e0, err := q.Read(k0)
	if err != nil {
		t.Fatal(err)
	}
	e0.Attempts, e0.LastError = 3, "boom"
	if err := q.Update(e0); err != nil {
		t.Fatal(err)
	}
	e1, _ := q.Read(k1)
	if err := q.Remove(e1); err != nil {
		t.Fatal(err)
	}
	e2, _ := q.Read(k2)
	if err := q.Drop(e2, "no longer selected"); err != nil {
		t.Fatal(err)
	}
	// A fresh queue value, as another process would read it.
	q2 := &Queue{Dir: q.Dir}
	if got, _ := q2.Peek(k0); got == nil || got.Attempts != 3 || got.LastError != "boom" {
		t.Fatalf("updated entry = %+v", got)
	}
	if _, ok := q2.Get(k1); ok {
		t.Fatal("removed entry still queued")
	}
	if _, ok := q2.Dropped(k2, time.Time{}, 0); !ok {
		t.Fatal("dropped entry not in dropped/")
	}
	entries, bad, _ := q2.List()
	if len(entries) != 48 || len(bad) != 0 {
		t.Fatalf("List = %d entries, %v; want 48", len(entries), bad)
	}
	// Queueing all again: each pair is still one entry, and the failing
	// one keeps its retry state.
	if _, err := q.Add(pairs, time.Now()); err != nil {
		t.Fatal(err)
	}
	q3 := &Queue{Dir: q.Dir}
	if entries, _, _ := q3.List(); len(entries) != 50 {
		t.Fatalf("List after queueing again = %d entries, want 50", len(entries))
	}
	if got, _ := q3.Peek(k0); got.Attempts != 3 {
		t.Fatal("queueing again lost the retry state")
	}
}

// A shared file is never trusted beyond its lines: an entry name linked
// to a file where no line is that pair is corrupt, and so is a file over
// the size limit.
func TestSharedFileCorrupt(t *testing.T) {
	q := openQ(t)
	a, b := mkPath("a-1"), mkPath("b-1")
	lines := fmt.Sprintf(`{"target":"main","path":%q}`+"\n"+`{"target":"main","path":%q}`+"\n", a, a)
	file := filepath.Join(t.TempDir(), "shared")
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, q.path(entriesDir, Key("main", a))); err != nil {
		t.Skip("cannot link across directories here:", err)
	}
	if err := os.Link(file, q.path(entriesDir, Key("main", b))); err != nil {
		t.Fatal(err)
	}
	if e, err := q.Peek(Key("main", a)); err != nil || e.Path != a.String() {
		t.Fatalf("Peek a = %v, %v", e, err)
	}
	if _, err := q.Peek(Key("main", b)); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Peek b, whose line is missing = %v; want corrupt", err)
	}
	big := q.path(entriesDir, Key("main", mkPath("c-1")))
	if err := os.WriteFile(big, []byte(strings.Repeat(lines, maxSharedSize/len(lines)+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Peek(Key("main", mkPath("c-1"))); err == nil {
		t.Fatal("a file over the shared size limit was read")
	}
}

func mustParse(t *testing.T, s string) storepath.Path {
	t.Helper()
	p, err := storepath.Parse(storepath.StoreDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A line appendNew writes decodes to the entry Add makes of the pair, as
// encoding/json's would, whatever the strings hold.
func TestAppendNew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	sp := func(dir, hash, name string) storepath.Path { return storepath.New(dir, hash, name) }
	for _, p := range []Pair{
		{Target: "main", Path: sp("/nix/store", "x", "a")},
		{Target: "work/eu \"q\" \\ \x01 é <&>", Path: sp("/nix/store", "x", "b"), Session: 4242,
			Facts: &Facts{NarSize: 12345, Deriver: "/nix/store/d-b.drv", Substitutes: "denied"}, Within: "/nix/store/r-root"},
		{Target: "main", Path: sp("/nix/store", "x", "d"), Listed: "/nix/store/l-cachix-packages"},
		{Target: "t", Path: sp("/nix/store", "x", "c"), Facts: &Facts{}},
		{Target: "t", Path: sp("/odd \"store\"\x02", "x", "e")},
	} {
		e := &Entry{Target: p.Target, Path: p.Path.String(), Queued: now, Session: p.Session, Facts: p.Facts, Within: p.Within, Listed: p.Listed}
		line := appendNew(nil, &p, now.AppendFormat(nil, time.RFC3339Nano))
		var got Entry
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		want, _ := json.Marshal(e)
		have, _ := json.Marshal(&got)
		if string(want) != string(have) || line[len(line)-1] != '\n' {
			t.Errorf("appendNew wrote %s\nwhich reads as %s\nwant %s", line, have, want)
		}
	}
}

// parseNew reads what appendNew writes as encoding/json does, and leaves
// to encoding/json every line it is not sure of.
func TestParseNewAsJSON(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	stamp := now.AppendFormat(nil, time.RFC3339Nano)
	sp := func(name string) storepath.Path {
		return storepath.New("/nix/store", "0123456789abcdfghijklmnpqrsvwxyz", name)
	}
	for _, p := range []Pair{
		{Target: "main", Path: sp("a")},
		{Target: "main", Path: sp("b"), Session: 4242, Facts: &Facts{NarSize: 12345, Deriver: "/nix/store/d-b.drv", Substitutes: "denied"}, Within: "/nix/store/r-root"},
		{Target: "main", Path: sp("c"), Facts: &Facts{}},
		{Target: "main", Path: sp("d"), Listed: "/nix/store/l-cachix-packages", Session: -1},
		{Target: "file:///srv/cache?x=y", Path: sp("e"), Facts: &Facts{Substitutes: "yes"}},
		{Target: "main", Path: sp("f"), Facts: &Facts{Substitutes: "denied"}, Within: "/nix/store/r-root", Pinned: true},
	} {
		line := bytes.TrimSpace(appendNew(nil, &p, stamp))
		got, ok := parseNew(line, nil)
		if !ok {
			t.Errorf("parseNew refused %s", line)
			continue
		}
		var want Entry
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("parseNew(%s) = %+v, want %+v", line, got, want)
		}
	}
	// Lines it leaves to encoding/json.
	for _, line := range []string{
		`{"path":"/nix/store/x-a","target":"main","queued":"2026-01-02T03:04:05Z"}`,
		`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z","attempts":2}`,
		`{"target":"ma\u0069n","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z"}`,
		`{"target":"é","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z"}`,
		`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z","session":01}`,
		`{"target":"main","path":"/nix/store/x-a","queued":"yesterday"}`,
		`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z"} `,
		`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z","facts":{"nar_size":1}}x`,
	} {
		if e, ok := parseNew([]byte(line), nil); ok {
			t.Errorf("parseNew took %s as %+v", line, e)
		}
	}
}

// TestParseNewShared: lines read one after another share the strings
// of a repeated target or root, and each still reads as encoding/json
// reads it alone.
func TestParseNewShared(t *testing.T) {
	var rc recent
	for _, line := range []string{
		`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z","within":"/nix/store/r-root"}`,
		`{"target":"main","path":"/nix/store/x-b","queued":"2026-01-02T03:04:05Z","within":"/nix/store/r-root"}`,
		`{"target":"other","path":"/nix/store/x-b","queued":"2026-01-02T03:04:05Z"}`,
		`{"target":"main","path":"/nix/store/x-c","queued":"2026-01-02T03:04:06Z","within":"/nix/store/s-root"}`,
		`{"target":"main","path":"/nix/store/x-d","queued":"2026-01-02T03:04:06Z","within":"/nix/store/r-root"}`,
	} {
		got, ok := parseNew([]byte(line), &rc)
		if !ok {
			t.Fatalf("parseNew refused %s", line)
		}
		var want Entry
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("parseNew(%s) = %+v, want %+v", line, got, want)
		}
	}
}

// FuzzParseNew: whatever parseNew takes, encoding/json reads the same.
func FuzzParseNew(f *testing.F) {
	f.Add([]byte(`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05.000006789Z","session":7,"facts":{"nar_size":-3,"deriver":"d","substitutes":"s"},"within":"w","listed":"l"}`))
	f.Add([]byte(`{"target":"","path":"","queued":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"target":"t","path":"p","queued":"2026-01-02T03:04:05+01:00","session":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, ok := parseNew(line, nil)
		if !ok {
			return
		}
		var want Entry
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatalf("parseNew took %q, which encoding/json refuses: %v", line, err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("parseNew(%q) = %+v, encoding/json %+v", line, got, want)
		}
	})
}

// A bulk file whose temporary name is that of a bulk file still queued
// takes another name: renamed into place, it replaced the queued file
// and lost its entries.
func TestPlaceBulkKeepsQueuedFile(t *testing.T) {
	q := openQ(t)
	first := manyPairs(3, "first")
	if _, err := q.Add(first, time.Now()); err != nil {
		t.Fatal(err)
	}
	names := ls(t, q.path(bulkDir))
	if len(names) != 1 {
		t.Fatalf("bulk/ = %v, want one file", names)
	}
	// A second file written under the same temporary name, as two draws
	// of CreateTemp's random number may give.
	second := manyPairs(2, "second")
	lines := appendNew(nil, &second[0], []byte("2026-01-02T03:04:05Z"))
	lines = appendNew(lines, &second[1], []byte("2026-01-02T03:04:05Z"))
	tmp := q.path(tmpDir, names[0])
	if err := os.WriteFile(tmp, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	name, err := q.placeBulk(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if name == names[0] || !bulkName(name) {
		t.Fatalf("placed as %q beside %q", name, names[0])
	}
	if _, err := os.Lstat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the temporary file is still there: %v", err)
	}
	entries, bad, err := (&Queue{Dir: q.Dir}).List()
	if err != nil || len(bad) != 0 {
		t.Fatal(err, bad)
	}
	want := map[string]bool{}
	for _, p := range append(first, second...) {
		want[Key(p.Target, p.Path)] = true
	}
	for _, e := range entries {
		delete(want, e.Key())
	}
	if len(want) != 0 || len(entries) != 5 {
		t.Fatalf("queued %d entries; missing %v", len(entries), want)
	}
}

// The hook queueing a pair whose name in entries/ holds a file larger
// than an entry (a shared file of an older version, or garbage: up to
// maxSharedSize is read and parsed) does not read it: 16 MiB of lines
// took a second and 160,000 parsed entries, on the build's path. The pair
// goes to a bulk file, as for any file there it cannot use: queued twice,
// pushed once.
func TestAddOverLargeFileAtItsNameIsNotRead(t *testing.T) {
	q := openQ(t)
	a := mkPath("a-1")
	var buf bytes.Buffer
	for i := 0; buf.Len() < maxSharedSize/4; i++ {
		fmt.Fprintf(&buf, `{"target":"main","path":%q}`+"\n", mkPath(fmt.Sprintf("x%d-1", i)))
	}
	fmt.Fprintf(&buf, `{"target":"main","path":%q}`+"\n", a)
	lines := strings.Count(buf.String(), "\n")
	if err := os.WriteFile(q.path(entriesDir, Key("main", a)), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var added int
	var err error
	allocs := testing.AllocsPerRun(1, func() { added, err = q.Add([]Pair{{Target: "main", Path: a}}, time.Now()) })
	if allocs > float64(lines/10) {
		t.Errorf("Add made %.0f allocations: it read the %d lines of the file at the pair's name", allocs, lines)
	}
	if err != nil || added != 1 {
		t.Fatalf("Add = %d, %v; want the pair queued beside the file", added, err)
	}
	names, err := q.BulkNames()
	if err != nil || len(names) == 0 {
		t.Fatalf("bulk files %v, %v: the pair is not queued beside the file", names, err)
	}
}
