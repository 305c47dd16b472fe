package metrics

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func snapshot() Snapshot {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var h Histogram
	h.Observe(300 * time.Millisecond)
	h.Observe(2 * time.Second)
	h.Observe(2 * time.Hour)
	return Snapshot{
		Now:           now,
		WorkerRunning: true,
		Corrupt:       1,
		Targets: []Target{
			{Name: "main", Pending: 3, Failing: 1, Dropped: 2, OldestQueued: now.Add(-90 * time.Second), PinsPending: 1,
				Counters: Counters{PushedPaths: 7, Calls: 3, Failures: 1, DroppedPaths: map[string]int{"patterns": 1, "garbage_collected": 1},
					Durations: h, Pinned: 2, LastSuccess: now.Add(-time.Minute)}},
			// A name that needs escaping in a label value.
			{Name: "we\"ird\\name\n", Counters: Counters{}},
		},
	}
}

func TestRender(t *testing.T) {
	out := string(Render(snapshot()))
	for _, want := range []string{
		"# TYPE cachix_filter_hook_pending gauge\n",
		`cachix_filter_hook_pending{target="main"} 3` + "\n",
		`cachix_filter_hook_failing{target="main"} 1` + "\n",
		`cachix_filter_hook_dropped{target="main"} 2` + "\n",
		`cachix_filter_hook_oldest_pending_age_seconds{target="main"} 90` + "\n",
		`cachix_filter_hook_oldest_pending_age_seconds{target="we\"ird\\name\n"} 0` + "\n",
		`cachix_filter_hook_last_success_timestamp_seconds{target="main"} 1.79646114e+09` + "\n",
		`cachix_filter_hook_pushed_paths_total{target="main"} 7` + "\n",
		`cachix_filter_hook_dropped_paths_total{target="main",reason="garbage_collected"} 1` + "\n",
		`cachix_filter_hook_dropped_paths_total{target="main",reason="patterns"} 1` + "\n",
		`cachix_filter_hook_pusher_calls_total{target="main",result="success"} 2` + "\n",
		`cachix_filter_hook_pusher_calls_total{target="main",result="failure"} 1` + "\n",
		"# TYPE cachix_filter_hook_pusher_duration_seconds histogram\n",
		`cachix_filter_hook_pusher_duration_seconds_bucket{target="main",le="0.25"} 0` + "\n",
		`cachix_filter_hook_pusher_duration_seconds_bucket{target="main",le="0.5"} 1` + "\n",
		`cachix_filter_hook_pusher_duration_seconds_bucket{target="main",le="2.5"} 2` + "\n",
		`cachix_filter_hook_pusher_duration_seconds_bucket{target="main",le="3600"} 2` + "\n",
		`cachix_filter_hook_pusher_duration_seconds_bucket{target="main",le="+Inf"} 3` + "\n",
		`cachix_filter_hook_pusher_duration_seconds_sum{target="main"} 7202.3` + "\n",
		`cachix_filter_hook_pusher_duration_seconds_count{target="main"} 3` + "\n",
		`cachix_filter_hook_pins_pending{target="main"} 1` + "\n",
		`cachix_filter_hook_pinned_total{target="main"} 2` + "\n",
		"cachix_filter_hook_worker_running 1\n",
		"cachix_filter_hook_config_error 0\n",
		"cachix_filter_hook_corrupt_entries 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// No last success: no sample, rather than a 1970 timestamp.
	if strings.Contains(out, `last_success_timestamp_seconds{target="we`) {
		t.Errorf("a target that never pushed has a last success:\n%s", out)
	}
	// One HELP and one TYPE per family, each family's samples together.
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			if seen[name] {
				t.Errorf("family %s twice", name)
			}
			seen[name] = true
		}
	}
}

// TestRenderPromtool has the real promtool check the output, when it is
// installed (.ci/run installs it, and test/fleet_test.go requires it).
func TestRenderPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: prometheus); test/fleet_test.go requires it in CI")
	}
	for _, s := range []Snapshot{snapshot(), {Now: time.Now()}} {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(Render(s))
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, Render(s))
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cachix_filter_hook.prom")
	for _, data := range []string{"a 1\n", "a 2\n"} {
		if err := WriteFile(file, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(file)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
		fi, _ := os.Stat(file)
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want 0644 (node exporter reads it as its own user)", fi.Mode().Perm())
		}
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 {
		t.Errorf("temporary files left: %v", left)
	}
	// A directory another user can write is refused.
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	if err := WriteFile(filepath.Join(open, "m.prom"), []byte("a 1\n")); err == nil || !strings.Contains(err.Error(), "metrics.file") {
		t.Errorf("a world-writable directory was written: %v", err)
	}
}

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	h.Observe(100 * time.Millisecond) // on a bound: in that bucket (le)
	if h.Counts[0] != 1 {
		t.Errorf("0.1 s went to %v", h.Counts)
	}
	h.Counts = []uint64{1, 2} // made with other buckets
	h.Observe(time.Second)
	if len(h.Counts) != len(Buckets)+1 || h.count() != 1 {
		t.Errorf("a histogram of other buckets was not started again: %v", h.Counts)
	}
}

// A target name that is not UTF-8 (hook.conf's parser refuses one, an
// environment variable does not) is written as valid UTF-8: the format
// is, and promtool and node exporter refused the whole output.
func TestRenderInvalidUTF8(t *testing.T) {
	out := Render(Snapshot{Now: time.Now(), Targets: []Target{{Name: "a\xffb"}}})
	if !utf8.Valid(out) {
		t.Fatalf("not UTF-8:\n%q", out)
	}
	if !bytes.Contains(out, []byte(`cachix_filter_hook_pending{target="a`+"\uFFFD"+`b"} 0`+"\n")) {
		t.Errorf("the name is not kept, its bad byte replaced:\n%s", out)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, msg)
		}
	}
}

// A worker killed between creating its temporary file and renaming it
// leaves that file behind; the next write removes it, so that they do not
// pile up in node exporter's directory, one per crash.
func TestWriteFileRemovesCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cachix_filter_hook.prom")
	crashed := filepath.Join(dir, ".cachix_filter_hook.prom.tmp123456")
	others := []string{filepath.Join(dir, "other.prom"), filepath.Join(dir, ".other.prom.tmp1")}
	for _, f := range append([]string{crashed}, others...) {
		if err := os.WriteFile(f, []byte("a 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFile(file, []byte("a 1\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(crashed); err == nil {
		t.Errorf("%s is still there after a write", filepath.Base(crashed))
	}
	for _, f := range others {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("another file was removed: %v", err)
		}
	}
}

// A label value's controls (a target name from the environment, a
// reason read back from state.json) reached status --prometheus's
// terminal and the scraper as they were: they are escaped, as in every
// other output, and what is left reads back as the same text.
func TestRenderEscapesControls(t *testing.T) {
	s := Snapshot{Now: time.Now(), Targets: []Target{{Name: "a\x1b]0;t\x07\u202eb",
		Counters: Counters{DroppedPaths: map[string]int{"x\u009by": 1}}}}}
	out := string(Render(s))
	for _, want := range []string{
		`cachix_filter_hook_pending{target="a\\x1b]0;t\\x07\\u202eb"} 0` + "\n",
		`reason="x\\u009by"} 1` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.ContainsFunc(out, func(r rune) bool { return r != '\n' && (r < 0x20 || r >= 0x7f && r <= 0x9f || r == '\u202e') }) {
		t.Errorf("a control character is left:\n%q", out)
	}
}
