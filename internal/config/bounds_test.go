package config

import (
	"context"
	"fmt"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostile are config files of up to MaxConfigSize bytes shaped to make a
// parser or the loader build much: issue 18 found 500,000 dotted parts
// (1.0 MB) OOM-killed at 24 GB.
func hostile() map[string]string {
	fill := func(head, unit, tail string) string {
		n := (MaxConfigSize - len(head) - len(tail)) / len(unit)
		return head + strings.Repeat(unit, n) + tail
	}
	numbered := func(head, format string) string {
		var b strings.Builder
		b.WriteString(head)
		for i := 0; ; i++ {
			s := fmt.Sprintf(format, i)
			if b.Len()+len(s) > MaxConfigSize {
				return b.String()
			}
			b.WriteString(s)
		}
	}
	half := MaxConfigSize / 2
	// At the lexer's limits: the most keys, as many tables as it takes
	// with the most keys each (unknown ones, each an error); the most
	// array elements, each a pattern to compile.
	var targets strings.Builder
	for i := 0; i < maxKeys/maxTableKeys; i++ {
		targets.WriteString("[[target]]\n")
		for j := 0; j < maxTableKeys; j++ {
			fmt.Fprintf(&targets, "k%d=1\n", j)
		}
	}
	pattern := "\"{" + strings.Repeat("a", (MaxConfigSize/maxElements)-12) + ",b}*\","
	return map[string]string{
		"dotted key":          fill("", "a.", "b = 1\n"),
		"table header":        fill("[", "a.", "b]\n"),
		"nested arrays":       "x = " + strings.Repeat("[", half-4) + strings.Repeat("]", half-4) + "\n",
		"nested tables":       fill("x = ", "{a=", ""),
		"unknown keys":        numbered("cache = \"c\"\n", "k%d = 1\n"),
		"unknown tables":      numbered("cache = \"c\"\n", "[t%d]\n"),
		"case variants":       numbered("cache = \"c\"\n", "Allow%d = 1\n"),
		"wide inline table":   numbered("x = {", "a%d = 1, ") + "}\n",
		"list of numbers":     fill("cache = \"c\"\nallow = [", "1,", "1]\n"),
		"list of patterns":    fill("cache = \"c\"\nallow = [", "\"{a,b,c}*\",", "\"*\"]\n"),
		"one long pattern":    fill("cache = \"c\"\nallow = [\"", "{a,b}", "\"]\n"),
		"long brace groups":   fill("cache = \"c\"\nallow = [\"", "{a}", "\"]\n"),
		"long hosts pattern":  fill("cache = \"c\"\nallow = [\"*\"]\nhosts = [\"", "{a,b}", "\"]\n"),
		"nested groups":       numbered("cache = \"c\"\nallow = [", "\""+strings.Repeat("{a,", 800)+strings.Repeat("}", 800)+"%d\",") + "\"*\"]\n",
		"longest patterns":    numbered("cache = \"c\"\nallow = [", "\""+strings.Repeat("{a,b}", filter.MaxPattern/5-2)+"%d\",") + "\"*\"]\n",
		"many targets":        fill("", "[[target]]\n", ""),
		"many valid targets":  numbered("", "[[target]]\ncache = \"c%d\"\nallow = [\"*\"]\n"),
		"array of tables":     fill("x = [", "{},", "{}]\n"),
		"most keys":           targets.String(),
		"most patterns":       "cache = \"c\"\nallow = [" + strings.Repeat(pattern, maxElements) + "\"x\"]\n",
		"long string":         "cache = \"" + strings.Repeat("c", MaxConfigSize-20) + "\"\n",
		"long comment":        "# " + strings.Repeat("x", MaxConfigSize-4) + "\n",
		"one long key":        strings.Repeat("k", MaxConfigSize-10) + " = 1\n",
		"unterminated string": "cache = \"" + strings.Repeat("[", MaxConfigSize-20) + "\n",
	}
}

// Issue 18: loading any file of up to MaxConfigSize costs under 1 s and
// under 64 MiB. Each hostile file is loaded by a child process (this
// test binary), whose peak memory (maxrss) and time are measured and
// printed, against the floor of a child loading a minimal config.
func TestLoadIsBoundedBySize(t *testing.T) {
	if f := os.Getenv("CFH_LOAD_CHILD"); f != "" {
		start := time.Now()
		_, err := Load(f)
		took := time.Since(start)
		// The peak of this process since its exec: a child's rusage
		// would count the test binary that forked it.
		status, _ := os.ReadFile("/proc/self/status")
		var hwm int64
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%d kB", &hwm)
			}
		}
		fmt.Printf("%d %d %.200v\n", took.Nanoseconds(), hwm<<10, err)
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("loads 19 files of 1 MiB in child processes")
	}
	isolate(t)
	dir := t.TempDir()
	run := func(name, content string) (took, cpu time.Duration, rss int64, msg string) {
		file := write(t, filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".conf"), content)
		if len(content) > MaxConfigSize {
			t.Fatalf("%s: %d bytes", name, len(content))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLoadIsBoundedBySize$")
		cmd.Env = append(os.Environ(), "CFH_LOAD_CHILD="+file)
		out, err := cmd.Output()
		var ns int64
		if _, serr := fmt.Sscanf(string(out), "%d %d", &ns, &rss); err != nil || serr != nil {
			t.Fatalf("%s: %v %v\n%s", name, err, serr, out)
		}
		parts := strings.SplitN(strings.TrimSpace(string(out)), " ", 3)
		// The child's CPU time (its start included) is what the bound is
		// about: the machine's load stretches wall time, not this.
		return time.Duration(ns), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), rss, parts[len(parts)-1]
	}
	line := func(name string, took, cpu time.Duration, rss int64, msg string) {
		t.Logf("%-20s %8s %8s %6.1f MiB  %.80s", name, took.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(rss)/(1<<20), msg)
	}
	t.Logf("%-20s %8s %8s %9s  %s", "file (<= 1 MiB)", "Load", "CPU", "peak RSS", "first error")
	took, cpu, rss, _ := run("floor", minimal)
	line("floor: minimal", took, cpu, rss, "")
	for name, content := range hostile() {
		took, cpu, rss, msg := run(name, content)
		line(name, took, cpu, rss, msg)
		if cpu > time.Second || rss > 64<<20 {
			t.Errorf("%s: %v of CPU and %d MiB, the bound is 1 s and 64 MiB", name, cpu, rss>>20)
		}
	}
}
