package queue

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Keys lists each queued pair once, whether it is in entries/, in a bulk
// file, in both, in two bulk files or twice in one, as Names did by
// decoding every entry; the keys of bulk files tell their target by
// KeyDigest; and lines that are not entries are left out.
func TestKeys(t *testing.T) {
	q := openQ(t)
	now := time.Now()
	a, b, c, d := mkPath("keys-a"), mkPath("keys-b"), mkPath("keys-c"), mkPath("keys-d")
	if _, err := q.Add([]Pair{{Target: "main", Path: a}}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add([]Pair{{Target: "main", Path: a}, {Target: "main", Path: b}, {Target: "other", Path: b}}, now); err != nil {
		t.Fatal(err)
	}
	// A second bulk file by hand: b again, c in a line encoding/json
	// wrote (an escape: the cursor refuses it), d twice, and lines that
	// are not entries.
	stamp := now.UTC().Format(time.RFC3339Nano)
	var lines bytes.Buffer
	lines.Write(appendNew(nil, &Pair{Target: "main", Path: b}, []byte(stamp)))
	fmt.Fprintf(&lines, "{\"target\":\"ma\\u0069n\",\"path\":%q,\"queued\":%q}\n", c.String(), stamp)
	lines.Write(appendNew(nil, &Pair{Target: "main", Path: d}, []byte(stamp)))
	lines.Write(appendNew(nil, &Pair{Target: "main", Path: d}, []byte(stamp)))
	lines.WriteString("not json\n")
	fmt.Fprintf(&lines, "{\"target\":\"\",\"path\":%q,\"queued\":%q}\n", a.String(), stamp)
	fmt.Fprintf(&lines, "{\"target\":\"main\",\"path\":\"/nix/store/short\",\"queued\":%q}\n", stamp)
	if _, err := q.writeBulk(lines.Bytes()); err != nil {
		t.Fatal(err)
	}

	files, bulk, err := q.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{Key("main", a)}; !slices.Equal(files, want) {
		t.Errorf("files = %v, want %v", files, want)
	}
	want := []string{Key("main", b), Key("other", b), Key("main", c), Key("main", d)}
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(bulk)); !slices.Equal(got, want) {
		t.Errorf("bulk = %v, want %v", got, want)
	}
	for _, k := range bulk {
		if d := KeyDigest(k); d != TargetDigest("main") && d != TargetDigest("other") {
			t.Errorf("KeyDigest(%s) = %q", k, d)
		}
	}
	// As decoding every entry finds them.
	decoded := map[string]bool{}
	names, _ := q.BulkNames()
	for _, n := range names {
		q.ReadBulk(n, func(e *Entry) {
			if !slices.Contains(files, e.Key()) {
				decoded[e.Key()] = true
			}
		})
	}
	if len(decoded) != len(bulk) {
		t.Errorf("decoding the bulk files finds %d keys, Keys %d", len(decoded), len(bulk))
	}
	for _, k := range bulk {
		if !decoded[k] {
			t.Errorf("Keys lists %s, which no entry has", k)
		}
	}
	if KeyDigest("not-a-key") != "" || KeyDigest(Key("main", a)+"x") != "" {
		t.Error("KeyDigest takes a name that is not a key")
	}
}

// Keys reads no entry: wait looks every 200 ms, and its first look
// decoding all 10,000 entries of a push --closure took the CPU the
// worker needed right before its pusher call (issue 22). Names and
// Peek, which decode, are what status uses.
func TestKeysDecodeNoEntry(t *testing.T) {
	q := openQ(t)
	if _, err := q.Add(manyPairs(100, "keys"), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, bulk, err := q.Keys()
	if err != nil || len(bulk) != 100 {
		t.Fatalf("Keys: %d keys, %v", len(bulk), err)
	}
	if q.bulk.files != nil || q.bulk.byKey != nil {
		t.Error("Keys decoded the bulk file's entries")
	}
	// Listed once: a second look reads nothing again.
	names, _ := q.BulkNames()
	q.bulk.keys[names[0]] = []string{"kept"}
	if _, bulk, _ := q.Keys(); !slices.Equal(bulk, q.bulk.all) || len(bulk) != 100 {
		t.Errorf("a second look gave %d keys", len(bulk))
	}
	// A replaced file is read anew.
	if _, err := q.Add(manyPairs(3, "more"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, bulk, _ := q.Keys(); len(bulk) != 4 || !slices.Contains(bulk, "kept") {
		t.Errorf("after a new bulk file: %d keys", len(bulk))
	}
}

// FuzzLineKey: a line whose key Keys reads from its start, and that is
// an entry, is the entry of that key.
func FuzzLineKey(f *testing.F) {
	stamp := []byte("2026-01-02T03:04:05Z")
	f.Add(bytes.TrimSpace(appendNew(nil, &Pair{Target: "main", Path: mkPath("a")}, stamp)))
	f.Add(bytes.TrimSpace(appendNew(nil, &Pair{Target: "t", Path: mkPath("b"), Within: "/nix/store/r-root", Facts: &Facts{NarSize: 3}}, stamp)))
	f.Add([]byte(`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z","attempts":2}`))
	// JSON keeps the last of two "target"s: this line decodes with no
	// target, yet its start names one. It is counted until the worker
	// moves it to corrupt/ (see Keys), so no check here says a key
	// means a target.
	f.Add([]byte(`{"target":"main","path":"/nix/store/x-a","queued":"2026-01-02T03:04:05Z","target":""}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		lp := newLineParser()
		key, ok := lp.key(line)
		if !ok {
			return
		}
		if e, k := newLineParser().parse(line); e != nil && k != key {
			t.Fatalf("line %q: key %s from its start, %s decoded", line, key, k)
		}
	})
}
