package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// Issue 23: a fleet. Metrics read back through a real node exporter,
// pins that survive a SIGKILL, one config on two hosts.

// onHost runs argv in a UTS namespace of its own whose host name is
// e.Host: the real binary reads the host name as it always does (no
// variable of ours can fake it), and the worker the hook starts inherits
// the namespace. Needs root (CAP_SYS_ADMIN), as the end-to-end tests do.
func (e *Env) onHost(argv []string) []string {
	if e.Host == "" {
		return argv
	}
	return append([]string{"unshare", "--uts", "/bin/sh", "-c", `printf %s "$0" > /proc/sys/kernel/hostname && exec "$@"`, e.Host}, argv...)
}

// requireTool finds a program the test needs; missing, it skips, unless
// CI runs (CI=true, or CFH_TEST_REQUIRE_NIX=1 as .ci/run sets), where it
// fails: .ci/run installs it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" || os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
		t.Fatalf("%s is not installed, and CI requires it (.ci/run installs it): %v", name, err)
	}
	t.Skipf("%s is not installed (Debian: %s)", name, map[string]string{"promtool": "prometheus", "prometheus-node-exporter": "prometheus-node-exporter", "unshare": "util-linux"}[name])
	return ""
}

// samples parses Prometheus' text format: each sample by its name and
// labels (sorted, so that renderings that order them differently
// compare), the families of prefix only.
func samples(t *testing.T, text, prefix string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	label := regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		name, labels, _ := strings.Cut(line[:i], "{")
		var ls []string
		for _, m := range label.FindAllStringSubmatch(labels, -1) {
			ls = append(ls, m[1]+"="+m[2])
		}
		sort.Strings(ls)
		out[name+"{"+strings.Join(ls, ",")+"}"] = v
	}
	return out
}

// nodeExporter starts the real node exporter serving dir's *.prom files
// on a loopback port, and returns its metrics URL.
func nodeExporter(t *testing.T, bin, dir string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(bin, "--collector.disable-defaults", "--collector.textfile",
			"--collector.textfile.directory="+dir, "--web.listen-address="+addr)
		logf, _ := os.Create(filepath.Join(t.TempDir(), "node-exporter.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		url := "http://" + addr + "/metrics"
		up := eventually.Wait(20*time.Second, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		select {
		case <-exited:
			// The port was taken in between: try another.
			if attempt < 3 {
				continue
			}
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("node exporter exited:\n%s", log)
		default:
		}
		if up != nil {
			t.Fatalf("node exporter does not answer on %s", url)
		}
		return url
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

func promtoolCheck(t *testing.T, promtool, what, text string) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics on %s: %v\n%s\n%s", what, err, out, text)
	}
}

// TestMetricsThroughNodeExporter: real builds with the hook, a slow
// pusher, a path dropped by closure_deny, a pusher that fails for a
// while; the metrics file is what promtool accepts and what a real node
// exporter serves, pending goes up and comes down after wait, the failing
// count shows the failures, and status --prometheus says the same as the
// file.
func TestMetricsThroughNodeExporter(t *testing.T) {
	promtool := requireTool(t, "promtool")
	exporter := requireTool(t, "prometheus-node-exporter")
	e := NewEnv(t, `
cache = "main"
allow = ["*"]
deny = ["secret-*"]
closure_deny = "skip"
[cachix]
bin = "@CACHIX@"
[metrics]
file = "@DIR@/textfile/cachix_filter_hook.prom"
`)
	textDir := filepath.Join(e.Dir, "textfile")
	if err := os.Mkdir(textDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(textDir, "cachix_filter_hook.prom")
	// Every push takes 2 s (the histogram shows it), after the gate,
	// which holds the first until pending was seen.
	e.Vars = append(e.Vars, "CACHIX_STANDIN_DELAY=2s")
	open := plGate(t, e)
	url := nodeExporter(t, exporter, textDir)
	read := func() map[string]float64 {
		data, _ := os.ReadFile(file)
		return samples(t, string(data), "cachix_filter_hook_")
	}
	salt := nixtest.Salt()
	secret := nixtest.Drv(salt, "secret-key-"+salt, nil)
	paths, _ := e.Build("let secret = " + secret + "; in " + nixtest.List(
		nixtest.Drv(salt, "metrics-app-"+salt, nil),
		nixtest.Drv(salt, "metrics-lib-"+salt, nil),
		nixtest.Drv(salt, "uses-secret-"+salt, nil, "secret"),
	))
	byName := nixtest.ByName(paths)

	// Pending goes up while the slow pusher works, in the file and
	// through node exporter.
	eventually.True(t, eventually.Left(t), "cachix_filter_hook_pending{target=main} >= 1 in the file (the push held at the gate)",
		func() bool { return read()["cachix_filter_hook_pending{target=main}"] >= 1 },
		func() string { d, _ := os.ReadFile(file); return string(d) })
	if v := samples(t, scrape(t, url), "cachix_filter_hook_")["cachix_filter_hook_pending{target=main}"]; v < 1 {
		t.Errorf("node exporter serves pending{main} = %v while the push is held", v)
	}
	open()
	// ... and down after wait; the path whose closure holds a denied
	// one is dropped.
	e.WaitDropped(eventually.Left(t), false, byName["uses-secret-"+salt])
	eventually.True(t, eventually.Left(t), "pending{main} 0 after wait", func() bool {
		m := read()
		return m["cachix_filter_hook_pending{target=main}"] == 0 && m["cachix_filter_hook_pushed_paths_total{target=main}"] >= 2
	}, func() string { d, _ := os.ReadFile(file); return string(d) })
	m := read()
	if m["cachix_filter_hook_dropped_paths_total{reason=closure_deny,target=main}"] != 1 || m["cachix_filter_hook_dropped{target=main}"] != 1 {
		t.Errorf("the drop is not counted: %v", m)
	}
	if m["cachix_filter_hook_pusher_duration_seconds_count{target=main}"] < 1 || m["cachix_filter_hook_pusher_duration_seconds_sum{target=main}"] < 2 {
		t.Errorf("the 2 s pusher calls are not in the histogram: %v", m)
	}

	// A pusher that fails (the stand-in's trick file, which its running
	// pushes read): the failing count shows it.
	trick := filepath.Join(e.Standin, "trick")
	if err := os.WriteFile(trick, []byte("fail"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Build(nixtest.Drv(salt, "flaky-thing-"+salt, nil))
	eventually.True(t, eventually.Left(t), "failing{target=main} >= 1", func() bool {
		m := read()
		return m["cachix_filter_hook_failing{target=main}"] >= 1 && m["cachix_filter_hook_pusher_calls_total{result=failure,target=main}"] >= 1
	}, func() string { d, _ := os.ReadFile(file); return string(d) + e.Log() })

	// Node exporter serves what the file says (read the file after the
	// scrape: the worker may rewrite it in between, so compare what
	// does not change now).
	served := samples(t, scrape(t, url), "")
	fileNow := read()
	for _, k := range []string{
		"cachix_filter_hook_pushed_paths_total{target=main}",
		"cachix_filter_hook_dropped_paths_total{reason=closure_deny,target=main}",
		"cachix_filter_hook_pusher_duration_seconds_bucket{le=+Inf,target=main}",
		"cachix_filter_hook_worker_running{}",
		"cachix_filter_hook_config_error{}",
	} {
		if v, ok := served[k]; !ok || v != fileNow[k] {
			t.Errorf("node exporter serves %s = %v (%v), the file says %v", k, v, ok, fileNow[k])
		}
	}
	if served["cachix_filter_hook_failing{target=main}"] < 1 || served["node_textfile_scrape_error{}"] != 0 {
		t.Errorf("node exporter: failing{main} = %v, node_textfile_scrape_error = %v", served["cachix_filter_hook_failing{target=main}"], served["node_textfile_scrape_error{}"])
	}
	data, _ := os.ReadFile(file)
	promtoolCheck(t, promtool, "metrics.file", string(data))
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("metrics file mode: %v %v, want 0644", fi, err)
	}

	// The pusher recovers; once the worker has exited, the file (its
	// last word) and status --prometheus say the same.
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if err := os.Remove(trick); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := e.Run(ctx, "retry"); code != 0 {
		t.Fatalf("retry: %d %s%s", code, out, errOut)
	}
	e.Wait(eventually.Left(t))
	eventually.True(t, eventually.Left(t), "the worker to exit", func() bool { return len(workerPIDs(e.Queue)) == 0 })
	status, errOut, code := e.Run(ctx, "status", "--prometheus")
	if code != 0 {
		t.Fatalf("status --prometheus: %d %s", code, errOut)
	}
	promtoolCheck(t, promtool, "status --prometheus", status)
	data, _ = os.ReadFile(file)
	if status != string(data) {
		t.Errorf("status --prometheus and the metrics file differ:\n--- file\n%s\n--- status\n%s", data, status)
	}
	if !strings.Contains(status, "cachix_filter_hook_worker_running 0\n") || !strings.Contains(status, `cachix_filter_hook_failing{target="main"} 0`+"\n") ||
		!strings.Contains(status, `cachix_filter_hook_pushed_paths_total{target="main"} 3`+"\n") {
		t.Errorf("status --prometheus:\n%s", status)
	}
}

// TestPinSurvivesKill: push --pin of a generation-like root with
// --keep-revisions 3 to two Cachix targets; the worker is SIGKILLed after
// the first Cachix push, the other push and the pins held; after wait the
// stand-in's record has exactly one pin per target, made after the
// root's closure was in that cache (the stand-in refuses a pin of a path
// its cache lacks). The host name of {host} is the one the commands run
// with.
func TestPinSurvivesKill(t *testing.T) {
	requireTool(t, "unshare")
	e := NewEnv(t, `
cache = "main"
allow = ["*"]
[[target]]
cache = "second"
allow = ["*"]
[[target]]
store = "file://@DIR@/local"
name = "local"
allow = ["*"]
[cachix]
bin = "@CACHIX@"
[metrics]
file = "@DIR@/m.prom"
`)
	e.Host = "gen-host"
	// One Cachix call goes at a time, as the test lets it (see the
	// stand-in's CACHIX_STANDIN_TURNS); all go before the Env's cleanup
	// waits for the worker.
	turns := filepath.Join(e.Dir, "turns")
	e.Vars = append(e.Vars, "CACHIX_STANDIN_TURNS="+turns)
	letThrough := func(n int) {
		t.Helper()
		if err := os.WriteFile(turns, bytes.Repeat([]byte("x"), n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { letThrough(1000) })
	salt := nixtest.Salt()
	dep := nixtest.Drv(salt, "hm-dep-"+salt, nil)
	// Built without the hook: push --pin does the queueing.
	paths, _, _ := e.BuildWith("", "let dep = "+dep+"; in "+nixtest.Drv(salt, "home-manager-generation-"+salt, nil, "dep"))
	root := nixtest.ByName(paths)["home-manager-generation-"+salt]
	if root == "" {
		t.Fatalf("no generation among %v", paths)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, "push", "--closure", "--pin", "{host}-{target}-home", "--keep-revisions", "3", root)
	if code != 0 {
		t.Fatalf("push --pin: %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		fmt.Sprintf("will pin %s in main as %q (--keep-revisions 3) once its closure is pushed", root, "gen-host-main-home"),
		fmt.Sprintf("will pin %s in second as %q", root, "gen-host-second-home"),
		"not pinned in local: it is a Nix store (file://" + e.Dir + "/local), which has no pins",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push --pin does not say %q:\n%s", want, out)
		}
	}
	// SIGKILL the worker once the first Cachix push is done: the second
	// push and both pins are still to come, held at their turns.
	letThrough(1)
	eventually.True(t, eventually.Left(t), "the first Cachix push to finish", func() bool {
		h, _ := os.ReadFile(filepath.Join(e.Queue, "history.jsonl"))
		for _, l := range strings.Split(string(h), "\n") {
			if strings.Contains(l, `"outcome":"pushed"`) && !strings.Contains(l, `"target":"local"`) {
				return true
			}
		}
		return false
	}, e.Log)
	for _, inv := range e.Invocations() {
		if len(inv.Argv) > 0 && inv.Argv[0] == "pin" {
			t.Fatalf("a pin was made before the worker was killed: the test cannot see pins survive the kill: %+v", inv)
		}
	}
	pids := workerPIDs(e.Queue)
	if len(pids) == 0 {
		t.Fatal("no worker to kill")
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Its Cachix calls held at their turns die with it (Pdeathsig), but
	// only once the kill has gone through: let them through before, and
	// a pin call of the killed worker could still be made, and made
	// again by the next worker, its file never removed.
	eventually.True(t, eventually.Left(t), "the killed worker and its Cachix calls to be gone", func() bool {
		return len(workerPIDs(e.Queue)) == 0 && len(plStandinPIDs(e)) == 0
	}, e.Log)
	letThrough(1000)
	if out, errOut, code := e.Run(ctx, "wait", "--timeout", eventually.Left(t).String()); code != 0 {
		t.Fatalf("wait: %d\n%s%s\n%s", code, out, errOut, e.Log())
	}
	// Exactly one pin per Cachix target, by name, path and keep.
	data, err := os.ReadFile(filepath.Join(e.Standin, "pins.jsonl"))
	if err != nil {
		t.Fatalf("no pin was made: %v\n%s", err, e.Log())
	}
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var p struct{ Cache, Name, Path, Keep string }
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatal(err)
		}
		if p.Path != root || p.Keep != "revisions 3" || p.Name != "gen-host-"+p.Cache+"-home" {
			t.Errorf("pin %+v", p)
		}
		count[p.Cache]++
	}
	if count["main"] != 1 || count["second"] != 1 || len(count) != 2 {
		t.Errorf("pins per cache %v, want exactly one in main and second:\n%s", count, data)
	}
	pinCalls := 0
	for _, inv := range e.Invocations() {
		if len(inv.Argv) > 0 && inv.Argv[0] == "pin" {
			pinCalls++
			if inv.Exit != 0 {
				t.Errorf("a pin call failed: %+v", inv)
			}
		}
	}
	if pinCalls != 2 {
		t.Errorf("%d pin calls recorded, want 2", pinCalls)
	}
	// status, log and the metrics show them.
	status, _, _ := e.Run(ctx, "status")
	if !strings.Contains(status, "1 pinned") {
		t.Errorf("status does not show the pin:\n%s", status)
	}
	log, _, _ := e.Run(ctx, "log")
	if !strings.Contains(log, "pinned  main "+root+` pin "gen-host-main-home" --keep-revisions 3`) {
		t.Errorf("log does not show the pin:\n%s", log)
	}
	prom, _, _ := e.Run(ctx, "status", "--prometheus")
	if m := samples(t, prom, "cachix_filter_hook_"); m["cachix_filter_hook_pinned_total{target=main}"] != 1 || m["cachix_filter_hook_pinned_total{target=second}"] != 1 || m["cachix_filter_hook_pins_pending{target=main}"] != 0 {
		t.Errorf("metrics of the pins: %v", m)
	}
}

// TestHostsOneConfigTwoHosts: the same config on a builder and a laptop,
// told apart by the kernel's host name (set in a UTS namespace: no
// variable fakes it). The builder pushes to both targets, the laptop only
// to the one for every host, and says why at every step.
func TestHostsOneConfigTwoHosts(t *testing.T) {
	requireTool(t, "unshare")
	const conf = `
cache = "mycache"
allow = ["*"]
hosts = ["builder-*"]
[[target]]
store = "file://@DIR@/all"
name = "all"
allow = ["*"]
[cachix]
bin = "@CACHIX@"
`
	for _, host := range []string{"builder-1", "laptop"} {
		t.Run(host, func(t *testing.T) {
			e := NewEnv(t, conf)
			e.Host = host
			// A variable cannot say it is a builder.
			e.Vars = append(e.Vars, "HOSTNAME=builder-9")
			salt := nixtest.Salt()
			paths, log := e.Build(nixtest.Drv(salt, "fleet-app-"+salt, nil))
			p := paths[0]
			off := "target mycache is for hosts builder-*; this is laptop"
			ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
			defer cancel()
			explain, _, _ := e.Run(ctx, "explain", p)
			if host == "laptop" {
				if !strings.Contains(log, off) {
					t.Errorf("the hook's line does not say why mycache gets nothing:\n%s", log)
				}
				want := fmt.Sprintf("push %s -> all (allow \"*\"; not -> mycache: %s)", p, off)
				if strings.TrimSpace(explain) != want {
					t.Errorf("explain = %q, want %q", explain, want)
				}
			} else if want := fmt.Sprintf("push %s -> mycache, all (allow \"*\")", p); strings.TrimSpace(explain) != want {
				t.Errorf("explain = %q, want %q", explain, want)
			}
			e.Wait(eventually.Left(t))
			inMy := CachePaths(t, filepath.Join(e.Standin, "mycache"))[p]
			inAll := CachePaths(t, filepath.Join(e.Dir, "all"))[p]
			if inMy != (host == "builder-1") || !inAll {
				t.Errorf("%s: in mycache %v, in all %v", host, inMy, inAll)
			}
			if host == "laptop" {
				dry, _, _ := e.Run(ctx, "push", "--dry-run", "--force", p)
				if !strings.Contains(dry, off) {
					t.Errorf("push --dry-run: %s", dry)
				}
			}
		})
	}
}
