package history

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// jsonLine is the record as encoding/json's Encoder writes it.
func jsonLine(t testing.TB, r Record) []byte {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLineAsJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	p := "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12"
	for _, r := range []Record{
		{Time: at, Target: "main", Path: p, Outcome: Pushed, Batch: 10000, Duration: 7 * time.Second},
		{Time: at.Truncate(time.Second), Target: "main", Path: p, Outcome: Dropped, Reason: "no longer selected: garbage-collected"},
		{Time: at, Target: "file:///srv/cache?x=y", Path: p, Outcome: Upstream, Reason: "https://cache.nixos.org has it", Listed: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-cachix-packages"},
		{Time: at, Target: "main", Path: p, Outcome: Failed, Reason: "exit status 1: error: cannot connect", Batch: 1, Duration: -1},
		{Time: at, Target: "main", Path: p, Outcome: Pinned, Duration: 1, Pin: "laptop-system --keep-revisions 3"},
		{Time: at, Path: p},
	} {
		want := jsonLine(t, r)
		got, ok := appendRecord(nil, &r)
		if !ok {
			t.Errorf("appendRecord refused %+v", r)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("appendRecord wrote\n%s\nencoding/json\n%s", got, want)
		}
		back, ok := parseRecord(bytes.TrimSuffix(got, []byte("\n")))
		if !ok {
			t.Errorf("parseRecord refused %s", got)
			continue
		}
		var viaJSON Record
		if err := json.Unmarshal(got, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, viaJSON) || !back.Time.Equal(r.Time) || back.Path != r.Path {
			t.Errorf("parseRecord(%s) = %+v, encoding/json %+v", got, back, viaJSON)
		}
	}
	// Records it leaves to encoding/json, which escapes them.
	for _, r := range []Record{
		{Time: at, Target: "main", Path: p, Outcome: Dropped, Reason: `deny "*-source"`},
		{Time: at, Target: "main", Path: p, Outcome: Pinned, Pin: `"laptop-system" --keep-revisions 3`},
		{Time: at, Target: "main", Path: p, Outcome: Failed, Reason: "error: \"quoted\""},
		{Time: at, Target: "main", Path: p, Outcome: Failed, Reason: "two\nlines"},
		{Time: at, Target: "main", Path: p, Outcome: Failed, Reason: "a <b> & c"},
		{Time: at, Target: "main", Path: p, Outcome: Failed, Reason: "é"},
		{Time: at, Target: "main", Path: p, Outcome: Failed, Reason: "\xff"},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Target: "main", Path: p, Outcome: Pushed},
	} {
		if line, ok := appendRecord(nil, &r); ok {
			t.Errorf("appendRecord wrote %+v alone: %s", r, line)
		}
	}
	// Lines it leaves to encoding/json.
	for _, line := range []string{
		`{"target":"main","time":"2026-01-02T03:04:05Z","path":"/nix/store/x-a","outcome":"pushed"}`,
		`{"time":"2026-01-02T03:04:05Z","target":"ma\u0069n","path":"/nix/store/x-a","outcome":"pushed"}`,
		`{"time":"2026-01-02T03:04:05Z","target":"é","path":"/nix/store/x-a","outcome":"pushed"}`,
		`{"time":"2026-01-02T03:04:05Z","target":"main","path":"/nix/store/x-a","outcome":"pushed","batch":01}`,
		`{"time":"2026-01-02T03:04:05Z","target":"main","path":"/nix/store/x-a","outcome":"pushed","batch":1.5}`,
		`{"time":"yesterday","target":"main","path":"/nix/store/x-a","outcome":"pushed"}`,
		`{"time":"2026-01-02T03:04:05Z","target":"main","path":"/nix/store/x-a","outcome":"pushed"} `,
		`{"time":"2026-01-02T03:04:05Z","target":"main","path":"/nix/store/x-a","outcome":"pushed","extra":1}`,
		`{"time":"2026-01-02T03:04:05Z","target":"main","path":"/nix/store/x-a","outcome":"pushed"}x`,
	} {
		if r, ok := parseRecord([]byte(line)); ok {
			t.Errorf("parseRecord took %s as %+v", line, r)
		}
	}
}

// TestReadMixed: a history of lines of both kinds reads as encoding/json
// reads it, line by line.
func TestReadMixed(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := []Record{
		{Time: at, Target: "main", Path: "/nix/store/x-a", Outcome: Pushed, Batch: 2},
		{Time: at, Target: "main", Path: "/nix/store/x-b", Outcome: Failed, Reason: "say \"no\"\n", Batch: 2},
		{Time: at, Target: "main", Path: "/nix/store/x-c", Outcome: Dropped, Reason: `deny "x-*"`},
	}
	if err := Append(dir, MaxSize, recs); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, recs)
	}
}

// FuzzParseRecord: whatever parseRecord takes, encoding/json reads the
// same.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"time":"2026-01-02T03:04:05.000006789Z","target":"main","path":"/nix/store/x-a","outcome":"pushed","reason":"r","listed_in":"l","batch":-3,"duration_ns":9223372036854775807,"pin":"p"}`))
	f.Add([]byte(`{"time":"2026-01-02T03:04:05+01:00","target":"","path":"","outcome":""}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, ok := parseRecord(line)
		if !ok {
			return
		}
		var want Record
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatalf("parseRecord took %q, which encoding/json refuses: %v", line, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseRecord(%q) = %+v, encoding/json %+v", line, got, want)
		}
	})
}

// FuzzAppendRecord: whatever appendRecord writes is what encoding/json
// writes.
func FuzzAppendRecord(f *testing.F) {
	f.Add(int64(1767323045), int64(6789), "main", "/nix/store/x-a", "pushed", "", "", 3, int64(7), "")
	f.Add(int64(-62135596800), int64(0), "t\"", "p<", "o", "r\n", "l", -1, int64(-1), "p")
	f.Fuzz(func(t *testing.T, sec, nsec int64, target, path, outcome, reason, listed string, batch int, dur int64, pin string) {
		r := Record{Time: time.Unix(sec, nsec).UTC(), Target: target, Path: path, Outcome: outcome, Reason: reason, Listed: listed, Batch: batch, Duration: time.Duration(dur), Pin: pin}
		got, ok := appendRecord(nil, &r)
		if !ok {
			return
		}
		if want := jsonLine(t, r); !bytes.Equal(got, want) {
			t.Fatalf("appendRecord wrote\n%s\nencoding/json\n%s", got, want)
		}
	})
}
