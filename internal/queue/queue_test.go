package queue

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Environment of the helper process that TestAddFromProcesses re-execs
// this test binary as.
const (
	envChildDir   = "QUEUE_TEST_CHILD_DIR"
	envChildPairs = "QUEUE_TEST_CHILD_PAIRS"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChildDir); dir != "" {
		os.Exit(childAdd(dir))
	}
	os.Exit(m.Run())
}

// childAdd adds the pairs pair-0 .. pair-(n-1) for target "main", one Add
// call per pair, and prints how many were new.
func childAdd(dir string) int {
	n, err := strconv.Atoi(os.Getenv(envChildPairs))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	q, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	total := 0
	for i := 0; i < n; i++ {
		added, err := q.Add([]Pair{{Target: "main", Path: mkPath(fmt.Sprintf("pair-%d", i))}}, time.Now())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		total += added
	}
	fmt.Println(total)
	return 0
}

const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

// mkPath returns a well-formed store path named name in the current store
// directory, with a hash derived from the name.
func mkPath(name string) storepath.Path {
	sum := sha256.Sum256([]byte(name))
	h := make([]byte, storepath.HashLen)
	for i := range h {
		h[i] = nixBase32[sum[i]%32]
	}
	return storepath.New(storepath.StoreDir(), string(h), name)
}

func openQ(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

func add(t *testing.T, q *Queue, pairs ...Pair) int {
	t.Helper()
	n, err := q.Add(pairs, time.Now())
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	return n
}

// mustGet is main's entry of p, which the test queued.
func mustGet(t *testing.T, q *Queue, p storepath.Path) *Entry {
	t.Helper()
	e, ok := q.Get(Key("main", p))
	if !ok {
		t.Fatal("Get: entry not found")
	}
	return e
}

func TestOpenCreatesPrivateDirs(t *testing.T) {
	// The parent does not exist yet: Open creates it.
	dir := filepath.Join(t.TempDir(), "a", "b", "queue")
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{q.Dir, q.path(entriesDir), q.path(tmpDir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 directory", d, fi.Mode())
		}
	}
	// Opening again is fine.
	if _, err := Open(dir); err != nil {
		t.Errorf("second Open: %v", err)
	}
}

func TestOpenUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "queue")); err == nil {
		t.Fatal("Open under a regular file succeeded")
	}
}

func TestAddDurableShape(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("X", 3600))
	n, err := q.Add([]Pair{{Target: "main", Path: p}}, now)
	if err != nil || n != 1 {
		t.Fatalf("Add = %d, %v; want 1, nil", n, err)
	}
	key := Key("main", p)
	if !strings.HasPrefix(key, p.Hash+".") {
		t.Errorf("Key = %q, want it to start with the path's hash", key)
	}
	file := filepath.Join(q.Dir, entriesDir, key)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("entry file missing after Add: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("entry mode %v, want 0600", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Nlink != 1 {
		t.Errorf("entry has %d links, want 1 (the tmp file must be gone)", st.Nlink)
	}
	if got := ls(t, q.path(tmpDir)); len(got) != 0 {
		t.Errorf("tmp/ not empty after Add: %q", got)
	}
	if got := ls(t, q.path(entriesDir)); len(got) != 1 || got[0] != key {
		t.Errorf("entries/ = %q, want [%s]", got, key)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("entry is not JSON: %v\n%s", err, data)
	}
	if raw["target"] != "main" || raw["path"] != p.String() || raw["queued"] != "2024-05-01T11:00:00Z" {
		t.Errorf("entry content = %s", data)
	}
	for _, k := range []string{"attempts", "next_attempt", "last_error", "last_attempt", "reason"} {
		if _, ok := raw[k]; ok {
			t.Errorf("new entry has %q set: %s", k, data)
		}
	}
	e, err := q.Read(key)
	if err != nil {
		t.Fatal(err)
	}
	if e.Key() != key || e.Target != "main" || e.Path != p.String() || !e.Queued.Equal(now) || e.Attempts != 0 {
		t.Errorf("Read = %+v", e)
	}
}

func TestAddSamePairTwice(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	if n := add(t, q, Pair{Target: "main", Path: p}); n != 1 {
		t.Errorf("Add of a new pair = %d, want 1", n)
	}
	if n := add(t, q, Pair{Target: "main", Path: p}); n != 0 {
		t.Errorf("Add of a queued pair = %d, want 0", n)
	}
	// In one call, a pair counts once; a bulk Add does not look for
	// what is queued (the worker pushes a pair queued twice once).
	if n := add(t, q, Pair{Target: "main", Path: p}, Pair{Target: "main", Path: p}); n != 1 {
		t.Errorf("Add of the same pair twice in one call = %d, want 1", n)
	}
	// The same path for another target is another entry; so is another
	// path for the same target.
	if n := add(t, q, Pair{Target: "work/eu", Path: p}, Pair{Target: "main", Path: mkPath("other")}); n != 2 {
		t.Errorf("Add of two new pairs = %d, want 2", n)
	}
	if names, _ := q.Names(); len(names) != 3 {
		t.Errorf("Names = %q, want 3 entries", names)
	}
	// Pairs given twice among others: each once, in the order given.
	q2 := openQ(t)
	a, b, c := mkPath("a-1"), mkPath("b-1"), mkPath("c-1")
	if n := add(t, q2, Pair{Target: "main", Path: a}, Pair{Target: "main", Path: b}, Pair{Target: "main", Path: a},
		Pair{Target: "main", Path: c}, Pair{Target: "main", Path: b}, Pair{Target: "t", Path: a}); n != 4 {
		t.Errorf("Add of 4 pairs among 6 = %d, want 4", n)
	}
	var got []string
	bulk, _ := q2.BulkNames()
	for _, name := range bulk {
		q2.ReadBulk(name, func(e *Entry) { got = append(got, e.Target+" "+e.Path) })
	}
	want := []string{"main " + a.String(), "main " + b.String(), "main " + c.String(), "t " + a.String()}
	if !slices.Equal(got, want) {
		t.Errorf("bulk lines %q, want %q", got, want)
	}
}

// A pair queued twice, once by push --pin (Pinned), reads as pinned
// whichever copy the queue keeps: the worker reads the root as ForPin
// says even before the pin's file is written.
func TestPairQueuedTwiceStaysPinned(t *testing.T) {
	q := openQ(t)
	r, x, y := mkPath("system-1"), mkPath("x-1"), mkPath("y-1")
	add(t, q, Pair{Target: "main", Path: r}, Pair{Target: "main", Path: x})
	add(t, q, Pair{Target: "main", Path: r, Pinned: true}, Pair{Target: "main", Path: y})
	e, err := q.Peek(Key("main", r))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Pinned {
		t.Errorf("the pair queued twice, once pinned, reads %+v: not pinned", e)
	}
}

func TestAddConcurrent(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	var total atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			n, err := q.Add([]Pair{{Target: "main", Path: p}}, time.Now())
			if err != nil {
				t.Errorf("Add: %v", err)
			}
			total.Add(int64(n))
		}()
	}
	close(start)
	wg.Wait()
	if total.Load() != 1 {
		t.Errorf("50 concurrent Adds reported %d new entries, want 1", total.Load())
	}
	if names, _ := q.Names(); len(names) != 1 {
		t.Errorf("entries = %q, want one", names)
	}
	if got := ls(t, q.path(tmpDir)); len(got) != 0 {
		t.Errorf("tmp/ not empty: %q", got)
	}
	if _, err := q.Read(Key("main", p)); err != nil {
		t.Errorf("Read: %v", err)
	}
}

func TestAddFromProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	q := openQ(t)
	const procs, pairs = 6, 40
	cmds := make([]*exec.Cmd, procs)
	outs := make([]strings.Builder, procs)
	for i := range cmds {
		cmd := exec.Command(exe)
		// GORACE: a race-enabled test binary otherwise sleeps 1s when it
		// exits 0.
		cmd.Env = append(os.Environ(), envChildDir+"="+q.Dir, envChildPairs+"="+strconv.Itoa(pairs), "GORACE=atexit_sleep_ms=0")
		cmd.Stdout = &outs[i]
		cmd.Stderr = &outs[i]
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i].String())
		}
		n, err := strconv.Atoi(strings.TrimSpace(outs[i].String()))
		if err != nil {
			t.Fatalf("child %d printed %q", i, outs[i].String())
		}
		total += n
	}
	if total != pairs {
		t.Errorf("%d processes adding the same %d pairs reported %d new entries, want %d", procs, pairs, total, pairs)
	}
	entries, bad, err := q.List()
	if err != nil || len(bad) > 0 {
		t.Fatalf("List: %v %v", err, bad)
	}
	if len(entries) != pairs {
		t.Errorf("%d entries, want %d", len(entries), pairs)
	}
	if got := ls(t, q.path(tmpDir)); len(got) != 0 {
		t.Errorf("tmp/ not empty: %q", got)
	}
}

func TestAddKeepsRetryState(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	add(t, q, Pair{Target: "main", Path: p})
	e, err := q.Read(Key("main", p))
	if err != nil {
		t.Fatal(err)
	}
	next := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e.Attempts, e.LastError, e.NextAttempt = 3, "boom", next
	if err := q.Update(e); err != nil {
		t.Fatal(err)
	}
	if n := add(t, q, Pair{Target: "main", Path: p}); n != 0 {
		t.Errorf("Add of a queued pair = %d, want 0", n)
	}
	got, err := q.Read(Key("main", p))
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts != 3 || got.LastError != "boom" || !got.NextAttempt.Equal(next) || !got.Queued.Equal(e.Queued) {
		t.Errorf("after a second Add the entry is %+v; want its retry state kept", got)
	}
}

// TestAddRacingUpdateKeepsRetryState: hooks that found no entry when
// they looked but link theirs after the worker has recorded a failure
// must not replace the worker's entry (link, not rename).
func TestAddRacingUpdateKeepsRetryState(t *testing.T) {
	q := openQ(t)
	for round := 0; round < 20; round++ {
		p := mkPath(fmt.Sprintf("racy-%d", round))
		key := Key("main", p)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := q.Add([]Pair{{Target: "main", Path: p}}, time.Now()); err != nil {
					t.Errorf("Add: %v", err)
				}
			}()
		}
		updated := make(chan struct{})
		go func() {
			defer close(updated)
			<-start
			for {
				e, err := q.Read(key)
				if err == nil {
					e.Attempts = 5
					if err := q.Update(e); err != nil {
						t.Errorf("Update: %v", err)
					}
					return
				}
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Read: %v", err)
					return
				}
				time.Sleep(10 * time.Microsecond)
			}
		}()
		close(start)
		wg.Wait()
		eventually.Recv(t, eventually.Left(t), "the racing Update to find the entry", updated)
		e, err := q.Read(key)
		if err != nil {
			t.Fatal(err)
		}
		if e.Attempts != 5 {
			t.Fatalf("round %d: an Add replaced the entry the worker updated (attempts %d, want 5)", round, e.Attempts)
		}
	}
}

func writeEntry(t *testing.T, q *Queue, name, content string) {
	t.Helper()
	if err := os.WriteFile(q.path(entriesDir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withoutDescriptors runs f with RLIMIT_NOFILE at the lowest free
// descriptor, so that no open in f works (EMFILE), and restores it.
func withoutDescriptors(t *testing.T, f func()) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	free, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(free)
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	f()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// An entry that cannot be opened for a reason of the moment (here
// EMFILE: no descriptor left) is not corrupt: it stays queued, to be read
// again, where moved to corrupt/ it was never pushed.
func TestReadOutOfDescriptorsIsNotCorrupt(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	add(t, q, Pair{Target: "main", Path: p})
	key := Key("main", p)
	var err error
	withoutDescriptors(t, func() { _, err = q.Read(key) })
	if err == nil || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Read with no descriptor left = %v, want EMFILE", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("Read took EMFILE for a corrupt entry: %v", err)
	}
	if _, err := os.Stat(q.path(entriesDir, key)); err != nil {
		t.Errorf("the entry left entries/: %v", err)
	}
	if e, err := q.Read(key); err != nil || e.Path != p.String() {
		t.Errorf("read again: %v, %v", e, err)
	}
}

func TestReadCorrupt(t *testing.T) {
	good := mkPath("hello-2.12.1")
	other := mkPath("other-1.0")
	entryJSON := func(target, path string) string {
		b, _ := json.Marshal(map[string]any{"target": target, "path": path, "queued": time.Now()})
		return string(b)
	}
	for _, tc := range []struct {
		name, key, content string
	}{
		{"bad JSON", Key("main", good), "{not json"},
		{"empty file", Key("main", good), ""},
		{"name of another path", Key("main", other), entryJSON("main", good.String())},
		{"name of another target", Key("work", good), entryJSON("main", good.String())},
		{"no target", Key("", good), entryJSON("", good.String())},
		{"malformed path", Key("main", good), entryJSON("main", good.Dir+"/not-a-store-path")},
		{"path outside the store", Key("main", good), entryJSON("main", "/tmp/"+good.Base())},
		{"arbitrary name", "garbage", entryJSON("main", good.String())},
		// 250 bytes: with corrupt/'s stamp added, longer than a name
		// may be, so the name set aside is cut.
		{"long arbitrary name", strings.Repeat("g", 250), "junk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openQ(t)
			writeEntry(t, q, tc.key, tc.content)
			// Peek (status, wait) reports it and leaves it in place.
			if _, err := q.Peek(tc.key); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Peek = %v; want an error wrapping ErrCorrupt", err)
			}
			if _, err := os.Stat(q.path(entriesDir, tc.key)); err != nil {
				t.Errorf("Peek moved the entry: %v", err)
			}
			e, rerr := q.Read(tc.key)
			if rerr == nil || !errors.Is(rerr, ErrCorrupt) {
				t.Fatalf("Read = %+v, %v; want an error wrapping ErrCorrupt", e, rerr)
			}
			if _, err := os.Stat(q.path(entriesDir, tc.key)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt entry still in entries/ (stat: %v)", err)
			}
			moved := ls(t, q.path(corruptDir))
			if len(moved) != 1 || !strings.HasPrefix(moved[0], tc.key[:min(len(tc.key), 200)]+".") {
				t.Fatalf("corrupt/ = %q, want one file named after %s", moved, tc.key)
			}
			data, err := os.ReadFile(q.path(corruptDir, moved[0]))
			if err != nil || string(data) != tc.content {
				t.Errorf("corrupt/%s = %q, %v; want the original content", moved[0], data, err)
			}
			if !strings.Contains(rerr.Error(), moved[0]) {
				t.Errorf("error %q does not say where the entry went", rerr)
			}
			if _, ok := q.Get(tc.key); ok {
				t.Error("Get found the corrupt entry")
			}
		})
	}
}

// A socket in entries/ (open refuses it with ENXIO before its kind can be
// checked) is what is wrong with the file, as a FIFO or a directory is:
// set aside in corrupt/. Taken for an error of the moment, it was read
// again at every scan, and a hook queueing its pair took it for queued.
func TestReadSocketIsCorrupt(t *testing.T) {
	q := openQ(t)
	key := Key("main", mkPath("hello-2.12.1"))
	if err := syscall.Mknod(q.path(entriesDir, key), syscall.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Peek(key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Peek = %v; want an error wrapping ErrCorrupt", err)
	}
	if _, err := q.Read(key); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read = %v; want an error wrapping ErrCorrupt", err)
	}
	if _, err := os.Lstat(q.path(entriesDir, key)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket is still in entries/ (lstat: %v)", err)
	}
	if moved := ls(t, q.path(corruptDir)); len(moved) != 1 || !strings.HasPrefix(moved[0], key+".") {
		t.Errorf("corrupt/ = %q, want the socket", moved)
	}
}

func TestReadMissing(t *testing.T) {
	q := openQ(t)
	_, err := q.Read(Key("main", mkPath("nope")))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Read of a missing entry = %v; want ErrNotExist, not ErrCorrupt", err)
	}
	if ls(t, q.path(corruptDir)) != nil {
		t.Error("a missing entry created corrupt/ files")
	}
}

func TestList(t *testing.T) {
	q := openQ(t)
	a, b := mkPath("a-1"), mkPath("b-1")
	add(t, q, Pair{Target: "main", Path: a}, Pair{Target: "work", Path: b})
	writeEntry(t, q, Key("main", mkPath("c-1")), "{")
	writeEntry(t, q, Key("main", mkPath("d-1")), `{"target":"main","path":"`+a.String()+`"}`)
	entries, bad, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Key()] = e.Target + " " + e.Path
	}
	want := map[string]string{Key("main", a): "main " + a.String(), Key("work", b): "work " + b.String()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List entries = %v, want %v", got, want)
	}
	if len(bad) != 2 {
		t.Fatalf("List errors = %v, want 2", bad)
	}
	for _, err := range bad {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("List error %v does not wrap ErrCorrupt", err)
		}
	}
	// List only looks: moving corrupt entries aside is the worker's job
	// (Read), so that it logs them.
	if n := len(ls(t, q.path(corruptDir))); n != 0 {
		t.Errorf("%d files in corrupt/ after List, want none", n)
	}
	if n := len(ls(t, q.path(entriesDir))) + len(ls(t, q.path(bulkDir))); n != 3 {
		t.Errorf("%d files in entries/ and bulk/ after List, want all 3", n)
	}
}

func TestListEmptyAndMissing(t *testing.T) {
	q := openQ(t)
	if e, bad, err := q.List(); len(e) != 0 || len(bad) != 0 || err != nil {
		t.Errorf("List of an empty queue = %v, %v, %v", e, bad, err)
	}
	gone := &Queue{Dir: filepath.Join(t.TempDir(), "never-opened")}
	if names, err := gone.Names(); names != nil || err != nil {
		t.Errorf("Names of a missing queue = %q, %v; want nothing, no error", names, err)
	}
}

func TestUpdate(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	add(t, q, Pair{Target: "main", Path: p})
	e, err := q.Read(Key("main", p))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	e.Attempts = 2
	e.LastError = "cachix exited with exit status 1: nope"
	e.LastAttempt = now
	e.NextAttempt = now.Add(4 * time.Second)
	if err := q.Update(e); err != nil {
		t.Fatal(err)
	}
	got, err := q.Read(e.Key())
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts != 2 || got.LastError != e.LastError || !got.LastAttempt.Equal(now) || !got.NextAttempt.Equal(e.NextAttempt) || !got.Queued.Equal(e.Queued) {
		t.Errorf("after Update, Read = %+v, want %+v", got, e)
	}
	if got := ls(t, q.path(tmpDir)); len(got) != 0 {
		t.Errorf("tmp/ not empty after Update: %q", got)
	}
	if names, _ := q.Names(); len(names) != 1 {
		t.Errorf("entries after Update = %q", names)
	}
}

func TestRemove(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	add(t, q, Pair{Target: "main", Path: p})
	e := mustGet(t, q, p)
	if err := q.Remove(e); err != nil {
		t.Fatal(err)
	}
	if names, _ := q.Names(); len(names) != 0 {
		t.Errorf("entries after Remove = %q", names)
	}
	if _, ok := q.Get(e.Key()); ok {
		t.Error("Get found a removed entry")
	}
	if err := q.Remove(e); err != nil {
		t.Errorf("Remove of a removed entry = %v, want nil", err)
	}
	// The pair can be queued again.
	if n := add(t, q, Pair{Target: "main", Path: p}); n != 1 {
		t.Errorf("Add after Remove = %d, want 1", n)
	}
}

func TestDrop(t *testing.T) {
	q := openQ(t)
	p, keep := mkPath("hello-2.12.1"), mkPath("keep-1")
	add(t, q, Pair{Target: "main", Path: p}, Pair{Target: "main", Path: keep})
	e := mustGet(t, q, p)
	before := time.Now().Add(-2 * time.Second)
	if err := q.Drop(e, "no longer in the store (garbage-collected)"); err != nil {
		t.Fatal(err)
	}
	if names, _ := q.Names(); len(names) != 1 || names[0] != Key("main", keep) {
		t.Errorf("entries after Drop = %q, want only the other entry", names)
	}
	if got := ls(t, q.path(droppedDir)); len(got) != 1 || got[0] != e.Key() {
		t.Errorf("dropped/ = %q, want [%s]", got, e.Key())
	}
	data, err := os.ReadFile(q.path(droppedDir, e.Key()))
	if err != nil || !strings.Contains(string(data), `"reason":"no longer in the store (garbage-collected)"`) {
		t.Errorf("dropped entry = %s, %v; want the reason in it", data, err)
	}
	d, ok := q.Dropped(e.Key(), before, 0)
	if !ok {
		t.Fatal("Dropped(key, before the drop) = false")
	}
	if d.Reason != "no longer in the store (garbage-collected)" || d.Path != p.String() || d.Target != "main" || d.Key() != e.Key() {
		t.Errorf("Dropped = %+v", d)
	}
	if _, ok := q.Dropped(e.Key(), time.Now().Add(time.Hour), 0); ok {
		t.Error("Dropped(key, after the drop) = true")
	}
	// Drop an entry whose file is older than since.
	old := q.path(droppedDir, e.Key())
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Dropped(e.Key(), before, 0); ok {
		t.Error("Dropped ignores since: an entry dropped an hour ago was reported")
	}
	if _, ok := q.Dropped(Key("main", keep), time.Time{}, 0); ok {
		t.Error("Dropped reports an entry that was never dropped")
	}
	// A corrupt dropped file is not reported.
	if err := os.WriteFile(q.path(droppedDir, "junk"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Dropped("junk", time.Time{}, 0); ok {
		t.Error("Dropped reports an unparseable file")
	}
	if got := ls(t, q.path(tmpDir)); len(got) != 0 {
		t.Errorf("tmp/ not empty after Drop: %q", got)
	}
}

// A clock stepped back between since and a drop (an NTP step while push
// --wait waits): the dropped file's time is before since by the wall
// clock, but its age now is within how long ago since was by the
// caller's monotonic clock. Compared with since alone, the drop was
// missed. A step forward keeps what was dropped before it.
func TestDroppedAcrossAClockStep(t *testing.T) {
	q := openQ(t)
	p := mkPath("hello-2.12.1")
	add(t, q, Pair{Target: "main", Path: p})
	e := mustGet(t, q, p)
	if err := q.Drop(e, "gone"); err != nil {
		t.Fatal(err)
	}
	file := q.path(droppedDir, e.Key())
	now := time.Now()
	dropped := now.Add(-time.Minute)
	if err := os.Chtimes(file, dropped, dropped); err != nil {
		t.Fatal(err)
	}
	// since was 10 minutes ago, and the wall clock read an hour ahead
	// then: it was stepped back since, and the drop came after.
	if _, ok := q.Dropped(e.Key(), now.Add(50*time.Minute), 10*time.Minute); !ok {
		t.Error("a drop after since, the clock stepped back in between, was missed")
	}
	// since was 10 minutes ago, the wall clock stepped an hour forward
	// since: the file dropped a minute before the step is after since.
	if _, ok := q.Dropped(e.Key(), now.Add(-70*time.Minute), 10*time.Minute); !ok {
		t.Error("a drop after since, the clock stepped forward after it, was missed")
	}
	// Dropped before since, by both clocks.
	if _, ok := q.Dropped(e.Key(), now, 30*time.Second); ok {
		t.Error("a drop before since was reported")
	}
}

func TestRetryRequest(t *testing.T) {
	q := openQ(t)
	if q.TakeRetryRequest() {
		t.Error("TakeRetryRequest without a request = true")
	}
	for i := 0; i < 2; i++ {
		if err := q.RequestRetry(); err != nil {
			t.Fatal(err)
		}
	}
	if !q.TakeRetryRequest() {
		t.Error("TakeRetryRequest after RequestRetry = false")
	}
	if q.TakeRetryRequest() {
		t.Error("TakeRetryRequest twice = true: the request was not cleared")
	}
	bad := &Queue{Dir: filepath.Join(t.TempDir(), "missing")}
	if err := bad.RequestRetry(); err == nil {
		t.Error("RequestRetry on a missing queue directory succeeded")
	}
}

func TestCleanTmp(t *testing.T) {
	q := openQ(t)
	old, fresh := q.path(tmpDir, "old.123"), q.path(tmpDir, "fresh.456")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	p := mkPath("hello-2.12.1")
	add(t, q, Pair{Target: "main", Path: p})
	e, _ := q.Get(Key("main", p))
	e.Attempts = 1
	_ = q.Update(e)
	entry := q.path(entriesDir, Key("main", p))
	if err := os.Chtimes(entry, past, past); err != nil {
		t.Fatal(err)
	}

	q.CleanTmp(time.Hour)
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old tmp file still there (stat: %v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh tmp file removed: %v", err)
	}
	if _, err := os.Stat(entry); err != nil {
		t.Errorf("CleanTmp removed an old entry: %v", err)
	}
	// A missing tmp/ is not a problem.
	os.RemoveAll(q.path(tmpDir))
	q.CleanTmp(time.Hour)
}

func TestWorkerLock(t *testing.T) {
	q := openQ(t)
	ctx := context.Background()
	if running, err := q.WorkerRunning(); err != nil || running {
		t.Fatalf("WorkerRunning with no worker = %v, %v", running, err)
	}
	l, err := q.AcquireWorker(ctx, 0)
	if err != nil || l == nil {
		t.Fatalf("AcquireWorker = %v, %v", l, err)
	}
	if fi, err := os.Stat(q.path(lockFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, %v; want mode 0600", fi, err)
	}
	if running, err := q.WorkerRunning(); err != nil || !running {
		t.Errorf("WorkerRunning while the lock is held = %v, %v", running, err)
	}
	// A second worker leaves at once, whatever its wait, since a worker
	// (not a probe) holds the lock: one that waited its hour would still
	// be waiting at go test's bound.
	for _, wait := range []time.Duration{0, time.Hour} {
		type acquired struct {
			l   *Lock
			err error
		}
		done := make(chan acquired, 1)
		go func() {
			l2, err := q.AcquireWorker(ctx, wait)
			done <- acquired{l2, err}
		}()
		select {
		case a := <-done:
			if a.err != nil || a.l != nil {
				t.Errorf("second AcquireWorker(wait %v) = %v, %v; want nil, nil", wait, a.l, a.err)
			}
		case <-time.After(eventually.Left(t)):
			t.Fatalf("second AcquireWorker(wait %v) did not return: a worker holds the lock, it should leave at once", wait)
		}
	}
	// A worker that waits forever waits until cancelled.
	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	l3, err := q.AcquireWorker(cctx, -1)
	cancel()
	if l3 != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AcquireWorker(wait forever) with a cancelled context = %v, %v", l3, err)
	}

	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if running, err := q.WorkerRunning(); err != nil || running {
		t.Errorf("WorkerRunning after Unlock = %v, %v", running, err)
	}
	l4, err := q.AcquireWorker(ctx, 0)
	if err != nil || l4 == nil {
		t.Fatalf("AcquireWorker after Unlock = %v, %v", l4, err)
	}
	l4.Unlock()
}

func TestWorkerWaitsForRelease(t *testing.T) {
	q := openQ(t)
	ctx := context.Background()
	l, err := q.AcquireWorker(ctx, 0)
	if err != nil || l == nil {
		t.Fatal(l, err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		l.Unlock()
	}()
	l2, err := q.AcquireWorker(ctx, -1)
	if err != nil || l2 == nil {
		t.Fatalf("AcquireWorker(wait forever) after the holder let go = %v, %v", l2, err)
	}
	l2.Unlock()
}

// probe holds a shared lock on the queue's lock file, as a hook's
// WorkerRunning does, until the returned function is called.
func probe(t *testing.T, q *Queue) func() {
	t.Helper()
	f, err := q.openLock()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

func TestProbeDoesNotStopWorker(t *testing.T) {
	q := openQ(t)
	ctx := context.Background()

	// A probe that holds on for a while (a slow hook) is waited out. The
	// waits here are a minute, which only a worker that gave up too
	// soon or never got the lock runs into: it gets it as soon as the
	// probes let go, which on a loaded machine may take a while.
	slow := probe(t, q)
	go func() {
		time.Sleep(50 * time.Millisecond)
		slow()
	}()
	l, err := q.AcquireWorker(ctx, time.Minute)
	if err != nil || l == nil {
		t.Fatalf("AcquireWorker while a hook probes = %v, %v; want the lock", l, err)
	}
	l.Unlock()

	// Hooks probing in a tight loop do not make a worker give up.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := q.WorkerRunning(); err != nil {
					t.Errorf("WorkerRunning: %v", err)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		l, err := q.AcquireWorker(ctx, time.Minute)
		if err != nil || l == nil {
			t.Errorf("attempt %d: AcquireWorker with hooks probing = %v, %v; want the lock", i, l, err)
			continue
		}
		l.Unlock()
	}
	close(stop)
	wg.Wait()

	// A probe that never lets go makes a waiting worker give up after
	// its wait, not at once and not never: by its wait of 200 ms, not
	// by the context's minute (which would say context.DeadlineExceeded).
	stuck := probe(t, q)
	defer stuck()
	never, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	l, err = q.AcquireWorker(never, 200*time.Millisecond)
	if err != nil || l != nil {
		t.Errorf("AcquireWorker with a stuck probe = %v, %v; want nil, nil", l, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("AcquireWorker with a stuck probe returned after %v, want about 200ms", d)
	}
	// Probes share: a second probe while the first holds on sees no
	// worker.
	if running, err := q.WorkerRunning(); err != nil || running {
		t.Errorf("WorkerRunning while another probe holds a shared lock = %v, %v", running, err)
	}
}

// Open makes no directory below one that another user can write: there
// that user could swap a directory about to be made for a symlink, and
// root would make the next one wherever it points. It says which
// directory to make. Below a directory only its owner writes, it makes
// what is missing, as before.
func TestOpenMakesNoParentUnderSharedDir(t *testing.T) {
	root := t.TempDir()
	shared := filepath.Join(root, "tmp")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(shared, "missing", "queue"))
	if err == nil || !strings.Contains(err.Error(), "writable by other users") || !strings.Contains(err.Error(), filepath.Join(shared, "missing")) {
		t.Fatalf("Open below a shared directory = %v, want a refusal naming the directory to make", err)
	}
	if _, err := os.Lstat(filepath.Join(shared, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open made a directory below a shared one: %v", err)
	}
	if _, err := Open(filepath.Join(root, "own", "missing", "queue")); err != nil {
		t.Fatalf("Open below a private directory: %v", err)
	}
}

// A file at a pair's name in entries/ that is not its entry (garbage
// left by a crash or a bad restore, a directory, a FIFO, a socket) does
// not make the pair count as queued: the worker sets that file aside in
// corrupt/, and the pair, taken for queued, was never pushed.
func TestAddOverFileNotItsEntryKeepsPair(t *testing.T) {
	p := mkPath("hello-2.12.1")
	key := Key("main", p)
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"garbage", func(path string) error { return os.WriteFile(path, []byte("{not json"), 0o600) }},
		{"empty file", func(path string) error { return os.WriteFile(path, nil, 0o600) }},
		{"entry of another pair", func(path string) error {
			b, _ := json.Marshal(map[string]any{"target": "main", "path": mkPath("other-1").String(), "queued": time.Now()})
			return os.WriteFile(path, b, 0o600)
		}},
		{"directory", func(path string) error { return os.Mkdir(path, 0o700) }},
		{"FIFO", func(path string) error { return syscall.Mkfifo(path, 0o600) }},
		{"socket", func(path string) error { return syscall.Mknod(path, syscall.S_IFSOCK|0o600, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openQ(t)
			if err := tc.make(q.path(entriesDir, key)); err != nil {
				t.Fatal(err)
			}
			if n := add(t, q, Pair{Target: "main", Path: p}); n != 1 {
				t.Errorf("Add over a file that is not the pair's entry = %d, want 1", n)
			}
			// The worker sets the file aside; the pair is still queued.
			if _, err := q.Read(key); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read = %v; want an error wrapping ErrCorrupt", err)
			}
			e, err := q.Peek(key)
			if err != nil || e.Path != p.String() || e.Target != "main" {
				t.Errorf("after the file was set aside, Peek = %+v, %v; want the pair queued", e, err)
			}
		})
	}
}

// A worker that starts after the wall clock was stepped forward takes the
// temporary file a hook is writing for one a killed hook left, and
// CleanTmp removes it before the hook links it into place (here: at the
// file's fsync, by a CleanTmp to which every file is old). The hook
// writes it again: the pair is queued, where Add failed and the hook said
// the path would not be pushed. One pair, many (a bulk file), and a pin.
func TestAddRewritesTmpFileCleanedMeanwhile(t *testing.T) {
	defer func() { syncs = nil }()
	for _, n := range []int{1, 3} {
		q := openQ(t)
		cleaned := false
		syncs = func(string) error {
			if !cleaned {
				cleaned = true
				q.CleanTmp(-time.Hour)
			}
			return nil
		}
		pairs := manyPairs(n, "stepped")
		if got, err := q.Add(pairs, time.Now()); err != nil || got != n {
			t.Errorf("Add of %d pairs with its temporary file removed = %d, %v; want all queued", n, got, err)
			continue
		}
		if !cleaned {
			t.Fatal("no temporary file was synced")
		}
		if names, err := q.Names(); err != nil || len(names) != n {
			t.Errorf("queued %q, %v; want %d entries", names, err, n)
		}
	}
	q := openQ(t)
	cleaned := false
	syncs = func(string) error {
		if !cleaned {
			cleaned = true
			q.CleanTmp(-time.Hour)
		}
		return nil
	}
	root := mkPath("stepped-system")
	if got, err := q.AddPins([]Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil || got != 1 {
		t.Errorf("AddPins with its temporary file removed = %d, %v; want it queued", got, err)
	}
}

// A pin file whose name push refuses (a space, a leading -, a control
// character) is corrupt, though it matches its file's name: read as a
// pin, the worker ran cachix pin with it, and wait, which finds a pin's
// outcome by the name's first word in the history, never matched it.
// AddPins refuses such a name too.
func TestReadPinRefusesWhatPushRefuses(t *testing.T) {
	q := openQ(t)
	root := mkPath("system-1")
	if err := os.MkdirAll(filepath.Join(q.Dir, pinsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"my system", "-h", "sys\x1b[2J", strings.Repeat("a", 201)} {
		key := PinKey("main", root, name)
		data, err := json.Marshal(Pin{Target: "main", Path: root.String(), Name: name, Queued: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(q.Dir, pinsDir, key), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if p, err := q.ReadPin(key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ReadPin of a pin named %q = %+v, %v; want ErrCorrupt", name, p, err)
		}
		if n, err := q.AddPins([]Pin{{Target: "other", Path: root.String(), Name: name}}, time.Now()); err == nil {
			t.Errorf("AddPins of a pin named %q = %d, nil; want an error", name, n)
		}
	}
	if _, err := q.AddPins([]Pin{{Target: "main", Path: root.String(), Name: "host-system@2:a.b_c+d=e"}}, time.Now()); err != nil {
		t.Errorf("AddPins of a good name: %v", err)
	}
}

// A pin queued again as the worker removes the old one (made, or dropped
// with its root, which this push queued again): the link found the old
// file, askPinAgain then found none and took it for this push's pin made,
// so the pin was never queued and push said "will pin".
func TestPinQueuedAsTheOldOneGoesIsQueued(t *testing.T) {
	q := openQ(t)
	root := mkPath("system-1")
	pin := Pin{Target: "main", Path: root.String(), Name: "sys"}
	if n, err := q.AddPins([]Pin{pin}, time.Now()); n != 1 || err != nil {
		t.Fatalf("AddPins = %d, %v", n, err)
	}
	old, err := q.ReadPin(PinKey("main", root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	q.pinExists = func(string) {
		if err := q.RemovePin(old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := q.AddPins([]Pin{pin}, time.Now())
	if err != nil {
		t.Fatalf("AddPins: %v", err)
	}
	if names, _ := q.PinNames(); n != 1 || len(names) != 1 {
		t.Errorf("AddPins as the old pin went = %d, pins %q; want the pin queued anew", n, names)
	}
}

// An ask for a pin again (push --pin of a pin queued already) is renamed
// into pinasks/, and push then says "will pin": pinasks/ must be synced
// after the rename, as entries/ is after a link, or a power failure loses
// the ask. It was not: the only fsync was the ask's content, before it.
func TestPinAskIsSynced(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	root := mkPath("system-1")
	pin := Pin{Target: "main", Path: root.String(), Name: "sys"}
	if n, err := q.AddPins([]Pin{pin}, time.Now()); n != 1 || err != nil {
		t.Fatalf("AddPins = %d, %v", n, err)
	}
	ask := filepath.Join(q.Dir, pinAsksDir, PinKey("main", root, "sys"))
	after := 0 // fsyncs once the ask is in place: pinasks/'s
	syncs = func(string) error {
		if _, err := os.Lstat(ask); err == nil {
			after++
		}
		return nil
	}
	if _, err := q.AddPins([]Pin{pin}, time.Now()); err != nil {
		t.Fatalf("AddPins again: %v", err)
	}
	if _, ok := q.PinAsked(PinKey("main", root, "sys")); !ok {
		t.Fatal("no ask written")
	}
	if after == 0 {
		t.Error("pinasks/ was not synced after the ask was renamed into it")
	}
}

// pins/ and pinasks/ are made by the first pin, and the first ask for a
// pin again, of a queue: the queue directory must be synced after each
// is made, before push says "will pin", or a power failure loses the
// directory, and the pin or ask in it with it. It was not: only the
// file and pins/ (pinasks/) were synced.
func TestPinDirsMadeAreSynced(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	root := mkPath("system-1")
	pin := Pin{Target: "main", Path: root.String(), Name: "sys"}
	for _, sub := range []string{pinsDir, pinAsksDir} {
		made := false // the queue directory synced once sub was made
		syncs = func(name string) error {
			if _, err := os.Lstat(filepath.Join(q.Dir, sub)); err == nil && name == q.Dir {
				made = true
			}
			return nil
		}
		if _, err := q.AddPins([]Pin{pin}, time.Now()); err != nil {
			t.Fatalf("AddPins: %v", err)
		}
		if _, err := os.Lstat(filepath.Join(q.Dir, sub)); err != nil {
			t.Fatalf("%s not made: %v", sub, err)
		}
		if !made {
			t.Errorf("the queue directory was not synced after %s/ was made", sub)
		}
	}
}

// A pin that cannot be opened for a reason of the moment (here EMFILE:
// no descriptor left) is not corrupt, as an entry is not: ReadPin said
// ErrCorrupt, and status, doctor and the metrics counted the pin as an
// unreadable one never made.
func TestReadPinOutOfDescriptorsIsNotCorrupt(t *testing.T) {
	q := openQ(t)
	root := mkPath("system-1")
	if _, err := q.AddPins([]Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := PinKey("main", root, "sys")
	var err error
	withoutDescriptors(t, func() { _, err = q.ReadPin(key) })
	if !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("ReadPin with no descriptor left = %v, want EMFILE", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadPin took EMFILE for a corrupt pin: %v", err)
	}
	if p, err := q.ReadPin(key); err != nil || p.Name != "sys" {
		t.Errorf("read again: %v, %v", p, err)
	}
}

// pinAskedAgainAsDropped queues the pin "sys" of a system for main,
// reads it as the worker does before it drops it, and asks for it again a
// second after it was queued (at now), as push --pin does meanwhile.
func pinAskedAgainAsDropped(t *testing.T, q *Queue) (key string, old *Pin, now time.Time) {
	t.Helper()
	root := mkPath("system-1")
	pin := Pin{Target: "main", Path: root.String(), Name: "sys"}
	now = time.Now()
	if _, err := q.AddPins([]Pin{pin}, now); err != nil {
		t.Fatal(err)
	}
	key = PinKey("main", root, "sys")
	old, err := q.ReadPin(key) // the worker's look
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.AddPins([]Pin{pin}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	return key, old, now
}

// A pin asked for again as the worker drops it, the ask found once its
// file is gone: DropPin queued the pin anew with AddPins, which writes a
// new file. When that failed (a full disk; here tmp/ is not a
// directory), the file was gone and the ask left with no pin to take it:
// the pin push had said it "will pin" was lost. It is kept, with its ask.
func TestPinAskedAgainAsItIsDroppedSurvivesAFailedWrite(t *testing.T) {
	q := openQ(t)
	key, old, _ := pinAskedAgainAsDropped(t, q)
	tmp := q.path(tmpDir)
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	requeued, err := q.DropPin(old)
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if names, _ := q.PinNames(); len(names) != 1 {
		t.Fatalf("DropPin = %v, %v, pins %q; want the pin asked for again kept", requeued, err, names)
	}
	if _, ok := q.PinAsked(key); !ok {
		t.Error("the ask is gone")
	}
	// Nothing in the way: kept, its ask with it, for the worker's next
	// look.
	if requeued, err := q.DropPin(old); !requeued || err != nil {
		t.Errorf("DropPin = %v, %v; want the pin kept", requeued, err)
	}
	if p, err := q.ReadPin(key); err != nil || p.Name != "sys" {
		t.Errorf("ReadPin = %v, %v; want the pin kept", p, err)
	}
	if _, ok := q.PinAsked(key); !ok {
		t.Error("the ask is gone")
	}
	if names := ls(t, tmp); len(names) != 0 {
		t.Errorf("tmp/ holds %q", names)
	}
}

// An ask that cannot be read for a reason of the moment (here EMFILE) as
// the worker drops its pin was taken for no ask: DropPin removed the pin
// and the ask, and the pin push --pin had asked for again, saying "will
// pin", was lost. The pin is kept, with its ask, to be looked at again.
func TestPinDroppedWithItsAskUnreadableIsKept(t *testing.T) {
	q := openQ(t)
	key, old, now := pinAskedAgainAsDropped(t, q)
	var requeued bool
	var err error
	withoutDescriptors(t, func() { requeued, err = q.DropPin(old) })
	if p, rerr := q.ReadPin(key); rerr != nil {
		t.Errorf("DropPin with the ask unreadable = %v, %v; the pin is gone: %v", requeued, err, rerr)
	} else if p.Name != "sys" {
		t.Errorf("pin %+v", p)
	}
	if asked, ok := q.PinAsked(key); !ok || !asked.Queued.Equal(now.Add(time.Second).UTC()) {
		t.Errorf("ask = %v, %v; want it kept", asked, ok)
	}
}

// DropPin moves the pin's file aside into tmp/: with tmp/ gone (removed
// by hand), the rename fails with ENOENT, which DropPin took for the pin
// already gone. It said the pin dropped while its file stayed in pins/,
// and the worker, forgetting it, read it anew next round and recorded its
// drop again, every round, a spawned worker finding it new each time it
// would exit. The pin is kept and the error said.
func TestDropPinWithTmpGoneIsNotDropped(t *testing.T) {
	q := openQ(t)
	root := mkPath("system-1")
	if _, err := q.AddPins([]Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := PinKey("main", root, "sys")
	old, err := q.ReadPin(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(q.path(tmpDir)); err != nil {
		t.Fatal(err)
	}
	requeued, err := q.DropPin(old)
	if _, rerr := q.ReadPin(key); rerr != nil {
		t.Fatalf("DropPin = %v, %v; the pin is gone, as it could not be: %v", requeued, err, rerr)
	}
	if err == nil || requeued {
		t.Errorf("DropPin with tmp/ gone = %v, %v, the pin still in pins/; want an error", requeued, err)
	}
}

// A worker killed in DropPin between moving a pin asked for again aside
// into tmp/ and linking it back left it there, the ask in pinasks/ with
// no pin to take it: the next worker's CleanTmp removed it (its time is
// the pin's, old), and the pin push --pin had asked for again, saying
// "will pin", was lost. It is linked back.
func TestCleanTmpKeepsAPinMovedAsideAskedForAgain(t *testing.T) {
	q := openQ(t)
	root := mkPath("system-1")
	pin := Pin{Target: "main", Path: root.String(), Name: "sys"}
	now := time.Now()
	queuedAndAskedAgain(t, q, pin, now)
	key := PinKey("main", root, "sys")
	// What DropPin leaves, killed before the link back.
	aside := q.path(tmpDir, pinAside+key)
	if err := os.Rename(q.path(pinsDir, key), aside); err != nil {
		t.Fatal(err)
	}
	past := now.Add(-2 * time.Hour)
	if err := os.Chtimes(aside, past, past); err != nil {
		t.Fatal(err)
	}
	q.CleanTmp(time.Hour)
	if p, err := q.ReadPin(key); err != nil || p.Name != "sys" {
		t.Errorf("ReadPin after CleanTmp = %+v, %v; want the pin asked for again back", p, err)
	}
	if _, ok := q.PinAsked(key); !ok {
		t.Error("the ask is gone")
	}
	if names := ls(t, q.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %q", names)
	}

	// Not asked for again, it was being dropped: removed once old.
	other := Pin{Target: "main", Path: root.String(), Name: "other"}
	if _, err := q.AddPins([]Pin{other}, now); err != nil {
		t.Fatal(err)
	}
	okey := PinKey("main", root, "other")
	aside = q.path(tmpDir, pinAside+okey)
	if err := os.Rename(q.path(pinsDir, okey), aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(aside, past, past); err != nil {
		t.Fatal(err)
	}
	q.CleanTmp(time.Hour)
	if _, err := q.ReadPin(okey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPin of a pin dropped = %v; want it gone", err)
	}
	if names := ls(t, q.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %q", names)
	}
}

// A pin asked for again as the worker drops it is linked back into pins/
// from tmp/, where DropPin moved it: pins/ must be synced after the
// link, before the file aside goes, as after any link of a pin, or a
// power failure may keep the move and lose the link, and the pin push
// said it "will pin" with it. It was not synced (AddPins, which wrote it
// anew before 08be5c2, was).
func TestPinLinkedBackIsSynced(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	root := mkPath("system-1")
	pin := Pin{Target: "main", Path: root.String(), Name: "sys"}
	now := time.Now()
	if _, err := q.AddPins([]Pin{pin}, now); err != nil {
		t.Fatal(err)
	}
	key := PinKey("main", root, "sys")
	old, err := q.ReadPin(key) // the worker's look
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.AddPins([]Pin{pin}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	linked := false // pins/ synced with the pin back in it
	syncs = func(name string) error {
		if _, err := os.Lstat(q.path(pinsDir, key)); err == nil && name == q.path(pinsDir) {
			linked = true
		}
		return nil
	}
	if requeued, err := q.DropPin(old); !requeued || err != nil {
		t.Fatalf("DropPin = %v, %v; want the pin kept", requeued, err)
	}
	if !linked {
		t.Error("pins/ was not synced after the pin was linked back into it")
	}
}

// An ask left behind with no pin (a worker killed in RemovePin between
// removing the pin's file and its ask, as its comment allows, or an ask
// of an older version, which held its time alone) was harmless while an
// ask held only its time. It now holds a keep, which ReadPin gives the
// pin: a pin queued anew by push --pin --keep-days 3 read as
// --keep-revisions 5 (or, under an older ask, no keep at all), and
// cachix pin was called with it, push having said "will pin ...
// (--keep-days 3)". A pin queued anew takes no keep from an ask before it.
func TestPinQueuedAnewTakesNoKeepFromAnAskLeftBehind(t *testing.T) {
	for _, old := range []bool{false, true} {
		q := openQ(t)
		root := mkPath("system-1")
		pin := Pin{Target: "main", Path: root.String(), Name: "sys", Keep: Keep{Revisions: 5}}
		now := time.Now()
		queuedAndAskedAgain(t, q, pin, now)
		key := PinKey("main", root, "sys")
		if old {
			data, _ := json.Marshal(now.Add(time.Second).UTC())
			if err := os.WriteFile(q.path(pinAsksDir, key), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// The worker, killed in RemovePin: the pin's file is gone, its
		// ask not yet.
		if err := os.Remove(q.path(pinsDir, key)); err != nil {
			t.Fatal(err)
		}
		pin.Keep = Keep{Days: 3}
		if n, err := q.AddPins([]Pin{pin}, now.Add(2*time.Second)); n != 1 || err != nil {
			t.Fatalf("AddPins = %d, %v", n, err)
		}
		if p, err := q.ReadPin(key); err != nil || p.Keep != pin.Keep {
			t.Errorf("ask of an older version %v: pin queued anew read as %+v, %v; want keep %+v", old, p, err, pin.Keep)
		}
	}
}

// queuedAndAskedAgain queues pin at now, then asks for it again a second
// later, as a second push --pin does: its file and an ask.
func queuedAndAskedAgain(t *testing.T, q *Queue, pin Pin, now time.Time) {
	t.Helper()
	if _, err := q.AddPins([]Pin{pin}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := q.AddPins([]Pin{pin}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
}

// A pin asked for again as the worker drops it, when both the link back
// into pins/ and queueing it anew fail (here pins/ is, for the moment,
// not a directory): DropPin removed the file it had moved aside all the
// same, and the pin push --pin had said it "will pin" was lost, its ask
// left with no pin. The file stays aside, and CleanTmp links it back.
func TestPinAskedAgainAsDroppedKeptAsideWhenItCannotGoBack(t *testing.T) {
	q := openQ(t)
	key, old, _ := pinAskedAgainAsDropped(t, q)
	pins := q.path(pinsDir)
	q.pinMovedAside = func(string) {
		if err := os.Rename(pins, pins+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pins, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	requeued, err := q.DropPin(old)
	if requeued || err == nil {
		t.Errorf("DropPin with pins/ not a directory = %v, %v; want an error", requeued, err)
	}
	if err := os.Remove(pins); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(pins+".away", pins); err != nil {
		t.Fatal(err)
	}
	if !q.PinAside(key) {
		t.Fatal("the pin asked for again is no longer aside in tmp/: it is lost")
	}
	q.CleanTmp(time.Hour)
	if p, err := q.ReadPin(key); err != nil || p.Name != "sys" {
		t.Errorf("ReadPin after CleanTmp = %+v, %v; want the pin asked for again back", p, err)
	}
	if _, ok := q.PinAsked(key); !ok {
		t.Error("the ask is gone")
	}
}

// A directory of the queue made, whose parent's fsync then failed, was
// left in place: the next call found it there and did not sync again,
// taking its name for durable, and a power failure could lose it with
// the pin (or entry) said queued in it. It is made, and synced, again.
func TestDirMadeWhoseSyncFailedIsSyncedLater(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	pin := Pin{Target: "main", Path: mkPath("system-1").String(), Name: "sys"}
	syncs = func(name string) error {
		if name == q.Dir {
			return syscall.EIO
		}
		return nil
	}
	if _, err := q.AddPins([]Pin{pin}, time.Now()); err == nil {
		t.Fatal("AddPins with the queue directory's fsync failing: no error")
	}
	synced := false
	syncs = func(name string) error {
		if _, err := os.Lstat(q.path(pinsDir)); err == nil && name == q.Dir {
			synced = true
		}
		return nil
	}
	if _, err := q.AddPins([]Pin{pin}, time.Now()); err != nil {
		t.Fatalf("AddPins: %v", err)
	}
	if !synced {
		t.Error("the queue directory was not synced with pins/ in it after its first sync failed")
	}
}

// A pin asked for again as it is dropped, linked back into pins/ but not
// synced (the fsync failed): DropPin keeps the file aside until the link
// is durable. Linking it back later (RelinkPinsAside, CleanTmp) found the
// pin in pins/ already and removed the file aside with pins/ never
// synced: a power failure could then lose the pin push said it "will pin".
func TestPinLinkedBackUnsyncedIsSyncedBeforeItsAsideGoes(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	key, old, _ := pinAskedAgainAsDropped(t, q)
	syncs = func(name string) error {
		if name == q.path(pinsDir) {
			return syscall.EIO
		}
		return nil
	}
	if requeued, err := q.DropPin(old); !requeued || err == nil {
		t.Fatalf("DropPin with pins/'s fsync failing = %v, %v; want kept, with the error", requeued, err)
	}
	if !q.PinAside(key) {
		t.Fatal("the pin linked back but not synced is not kept aside")
	}
	synced := false // pins/ synced with the pin in it, its file still aside
	syncs = func(name string) error {
		if name == q.path(pinsDir) && q.PinAside(key) {
			synced = true
		}
		return nil
	}
	if left, err := q.RelinkPinsAside(); left != 0 || err != nil {
		t.Errorf("RelinkPinsAside = %d left, %v; want 0", left, err)
	}
	if q.PinAside(key) {
		t.Error("the pin is still aside")
	}
	if !synced {
		t.Error("the file aside was removed with pins/ not synced since the pin was linked back")
	}
}

// A directory of the queue another process made and has not synced into
// its parent yet (here push --pin making pins/, and a second push
// queueing a pin while the first waits on its fsync): the second found
// it there, did not sync, and said "will pin" of a pin a power failure
// could lose with the directory. It syncs the parent itself; a
// directory found synced costs no fsync.
func TestDirMadeByAnotherNotSyncedYetIsSynced(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	other, err := Open(q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	second := Pin{Target: "main", Path: mkPath("system-2").String(), Name: "sys"}
	synced, inside := false, false
	syncs = func(name string) error {
		if name != q.Dir || inside {
			if inside && name == q.Dir {
				synced = true
			}
			return nil
		}
		// The first maker, between its mkdir and its parent's fsync.
		inside = true
		defer func() { inside = false }()
		if _, err := other.AddPins([]Pin{second}, time.Now()); err != nil {
			t.Errorf("AddPins of the second push: %v", err)
		}
		return nil
	}
	if _, err := q.AddPins([]Pin{{Target: "main", Path: mkPath("system-1").String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatalf("AddPins: %v", err)
	}
	if !synced {
		t.Error("the second push did not sync the queue directory, which held pins/ not synced yet")
	}
	n := countSyncs(t, func() {
		if _, err := Open(q.Dir); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Open of a queue whose directories are synced: %d fsyncs, want none", n)
	}
}

// Open makes the missing parents of the queue directory: MkdirAll made
// them without syncing any, and a power failure could lose the queue
// directory, with the entries said queued in it. Each is synced into
// its parent.
func TestOpenSyncsParentsItMakes(t *testing.T) {
	defer func() { syncs = nil }()
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "a", "b")
	synced := map[string]bool{}
	syncs = func(name string) error {
		// A parent synced with the directory made in it.
		for _, d := range []string{a, b, filepath.Join(b, "queue")} {
			if _, err := os.Lstat(d); err == nil && name == filepath.Dir(d) {
				synced[d] = true
			}
		}
		return nil
	}
	if _, err := Open(filepath.Join(b, "queue")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{a, b, filepath.Join(b, "queue")} {
		if !synced[d] {
			t.Errorf("%s made, its parent not synced after", d)
		}
		if fi, err := os.Lstat(d); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != 0o700 {
			t.Errorf("%s: %v, %v; want mode 0700", d, fi.Mode(), err)
		}
	}
}

// The unsynced mark is read from the Lstat that checks each directory:
// a second Lstat per directory of Open would cost the hook three stats a
// run for a mark almost never there, and so would a walk above the queue
// directory (a stat a level, up to / for root) for a parent left marked.
// Every Lstat of the package's is counted, os.Lstat's too.
func TestOpenStatsEachDirectoryOnce(t *testing.T) {
	q := openQ(t)
	n := 0
	lstat = func(name string) (fs.FileInfo, error) { n++; return os.Lstat(name) }
	defer func() { lstat = os.Lstat }()
	if _, err := Open(q.Dir); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("Open of a queue made and synced: %d Lstat of its directories, want 3 (one each)", n)
	}
}

// A parent Open made whose sync failed (or a crash before it) keeps its
// mark: the next Open, finding it there, made only what was missing below
// it and never synced it, so a power failure could still lose the queue
// with it. A directory made in a marked one syncs that one first.
func TestOpenSyncsParentLeftMarked(t *testing.T) {
	defer func() { syncs = nil }()
	root := t.TempDir()
	a := filepath.Join(root, "a")
	dir := filepath.Join(a, "b", "queue")
	syncs = func(name string) error {
		if name == root {
			return syscall.EIO
		}
		return nil
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("Open with the sync of a's parent failing: no error")
	}
	rootSynced := false
	syncs = func(name string) error {
		if name == root {
			rootSynced = true
		}
		return nil
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if !rootSynced {
		t.Error("a, left marked by a failed sync, was not synced into its parent")
	}
	if fi, err := os.Lstat(a); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != 0o700 {
		t.Errorf("%s: %v, %v; want mode 0700", a, fi.Mode(), err)
	}
}

// A pin left aside in tmp/ by a drop, kept there by its ask (an earlier
// push's "will pin"), asked for by a new push whose write then fails (a
// full disk): AddPins took the ask as one left with no pin, before it
// had queued its own, and the pin aside, asked for by nobody now, went
// with the earlier push's "will pin". The ask stays until this push's
// pin is queued.
func TestPinAsideKeepsItsAskWhenANewPushFails(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	key, _, now := pinAskedAgainAsDropped(t, q)
	if err := os.Rename(q.path(pinsDir, key), q.path(tmpDir, pinAside+key)); err != nil {
		t.Fatal(err)
	}
	syncs = func(name string) error {
		if filepath.Dir(name) == q.path(tmpDir) {
			return syscall.ENOSPC
		}
		return nil
	}
	pin := Pin{Target: "main", Path: mkPath("system-1").String(), Name: "sys"}
	if _, err := q.AddPins([]Pin{pin}, now.Add(2*time.Second)); err == nil {
		t.Fatal("AddPins with its write failing: no error")
	}
	syncs = nil
	if left, err := q.RelinkPinsAside(); left != 0 || err != nil {
		t.Errorf("RelinkPinsAside = %d, %v", left, err)
	}
	if p, err := q.ReadPin(key); err != nil || p.Name != "sys" {
		t.Errorf("ReadPin = %+v, %v; want the pin the earlier push asked for", p, err)
	}
}

// A pin a drop left aside, asked for again, with pins/ gone meanwhile:
// relinkPinAside only linked it back, which could not be, and it stayed
// aside for good (RelinkPinsAside said it left every round). It is
// queued anew with its ask, as DropPin does when the link back fails.
func TestPinAsideQueuedAnewWhenPinsIsGone(t *testing.T) {
	q := openQ(t)
	key, _, _ := pinAskedAgainAsDropped(t, q)
	if err := os.Rename(q.path(pinsDir, key), q.path(tmpDir, pinAside+key)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(q.path(pinsDir)); err != nil {
		t.Fatal(err)
	}
	if left, err := q.RelinkPinsAside(); left != 0 || err != nil {
		t.Errorf("RelinkPinsAside = %d, %v; want 0, nil", left, err)
	}
	if p, err := q.ReadPin(key); err != nil || p.Name != "sys" {
		t.Errorf("ReadPin = %+v, %v; want the pin asked for again", p, err)
	}
	if q.PinAside(key) {
		t.Error("the pin is still aside")
	}
}

// A directory made under a umask (or a parent's default ACL) that takes a
// bit off the unsynced mark was never synced into its parent: its maker
// went by the mark alone. The maker syncs whatever mode it got.
func TestDirMadeUnderUmaskIsSynced(t *testing.T) {
	defer func() { syncs = nil }()
	parent := t.TempDir()
	var synced []string
	syncs = func(name string) error {
		synced = append(synced, name)
		return nil
	}
	old := syscall.Umask(0o100) // the mark's owner-execute bit off
	defer syscall.Umask(old)
	dir := filepath.Join(parent, "pins")
	if err := mkdirPrivate(dir, false); err != nil {
		t.Fatal(err)
	}
	syscall.Umask(old)
	if !slices.Contains(synced, parent) {
		t.Errorf("synced %q; want %s synced after making %s under umask 0100", synced, parent, dir)
	}
	if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o700 || fi.Mode()&os.ModeSticky != 0 {
		t.Errorf("%s: %v, %v; want 0700 once synced", dir, fi.Mode(), err)
	}
}

// Clearing the unsynced mark once the parent is synced only spares the
// next Open an fsync: a chmod that failed there failed Open, and the
// hook queued nothing. The directory is used, marked still.
func TestDirMarkNotClearedStillOpens(t *testing.T) {
	defer func() { chmod = os.Chmod }()
	chmod = func(string, os.FileMode) error { return syscall.EIO }
	dir := filepath.Join(t.TempDir(), "queue")
	q, err := Open(dir)
	if err != nil {
		t.Fatalf("Open with the mark not cleared: %v", err)
	}
	if _, err := q.Add([]Pair{{Target: "main", Path: mkPath("hello-1")}}, time.Now()); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

// A pin a drop left aside, kept there by an earlier push's ask, queued
// anew by a push that asks for another keep: AddPins kept the old ask
// until the new pin was linked and synced, and a worker reading the pin
// in between took the old ask as one newer than the pin, and pinned with
// the old keep. The ask is this push's before its pin is linked.
func TestPinQueuedAnewOverAnAskKeptForAPinAsideHasItsOwnKeep(t *testing.T) {
	q := openQ(t)
	key, _, now := pinAskedAgainAsDropped(t, q)
	if err := os.Rename(q.path(pinsDir, key), q.path(tmpDir, pinAside+key)); err != nil {
		t.Fatal(err)
	}
	keep := Keep{Days: 3}
	seen := 0
	q.pinLinked = func(name string) {
		seen++
		if p, err := q.ReadPin(name); err != nil || p.Keep != keep {
			t.Errorf("ReadPin right after the link = %+v, %v; want keep %+v", p, err, keep)
		} else if a, ok := q.PinAsked(name); ok && a.New(p) {
			t.Errorf("right after the link, an ask %+v newer than the pin %+v: the worker takes its keep", a, p)
		}
	}
	pin := Pin{Target: "main", Path: mkPath("system-1").String(), Name: "sys", Keep: keep}
	if n, err := q.AddPins([]Pin{pin}, now.Add(2*time.Second)); n != 1 || err != nil {
		t.Fatalf("AddPins = %d, %v", n, err)
	}
	if seen != 1 {
		t.Fatalf("pinLinked called %d times", seen)
	}
	q.pinLinked = nil
	if _, ok := q.PinAsked(key); ok {
		t.Error("this push's own ask was left behind")
	}
	if left, err := q.RelinkPinsAside(); left != 0 || err != nil {
		t.Errorf("RelinkPinsAside = %d, %v", left, err)
	}
	if p, err := q.ReadPin(key); err != nil || p.Keep != keep {
		t.Errorf("ReadPin = %+v, %v; want keep %+v", p, err, keep)
	}
}

// Clearing the unsynced mark set the mode to 0700, which dropped the
// setgid bit a directory inherits from an admin's setgid group
// directory: only the mark goes.
func TestClearingMarkKeepsSetgid(t *testing.T) {
	base := filepath.Join(t.TempDir(), "group")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(base); err != nil || fi.Mode()&os.ModeSetgid == 0 {
		t.Skipf("cannot make a setgid directory here: %v, %v", fi.Mode(), err)
	}
	dir := filepath.Join(base, "a", "queue")
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(dir), dir, filepath.Join(dir, entriesDir)} {
		fi, err := os.Lstat(d)
		if err != nil || fi.Mode()&(fs.ModeSticky|fs.ModeSetgid|fs.ModePerm) != fs.ModeSetgid|0o700 {
			t.Errorf("%s: %v, %v; want setgid kept, the mark cleared, 0700", d, fi.Mode(), err)
		}
	}
}

// An admin's directory of mode 01700 above the queue looked like one
// left marked unsynced, and Open cleared its sticky bit: only a mark
// this code sets is cleared, and above the queue directory that is a
// mode of its own (parentMark), not the queue's.
func TestOpenLeavesAdminStickyParent(t *testing.T) {
	admin := filepath.Join(t.TempDir(), "admin")
	if err := os.Mkdir(admin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(admin, 0o700|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(admin, "queue"), filepath.Join(admin, "made", "queue")} {
		if _, err := Open(dir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(admin); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != fs.ModeSticky|0o700 {
			t.Errorf("after Open(%s): %s: %v, %v; want the admin's 01700 left as it is", dir, admin, fi.Mode(), err)
		}
		if fi, err := os.Lstat(dir); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != 0o700 {
			t.Errorf("%s: %v, %v; want 0700", dir, fi.Mode(), err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(admin, "made")); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != 0o700 {
		t.Errorf("made: %v, %v; want 0700", fi.Mode(), err)
	}
}

// A directory Open made above the queue and left marked (its mark could
// not be cleared, or a sync was cut short) was looked at again only
// when an Open made something below it, which once the queue exists no
// Open does: it kept its mark, others' execute bit with it, for good.
// Every Open finishes the marked directories above the queue.
func TestOpenFinishesMarkedParent(t *testing.T) {
	defer func() { chmod = os.Chmod; syncs = nil }()
	root := t.TempDir()
	a := filepath.Join(root, "a")
	dir := filepath.Join(a, "b", "queue")
	chmod = func(name string, mode os.FileMode) error {
		if name == a {
			return syscall.EIO
		}
		return os.Chmod(name, mode)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(a); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != parentMark {
		t.Fatalf("%s: %v, %v; want it left marked", a, fi.Mode(), err)
	}
	// What brings the next Open back up to a: the queue directory, which
	// every Open stats, keeps its mark while one above it does.
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != unsyncedMode {
		t.Errorf("%s: %v, %v; want it left marked while %s is", dir, fi.Mode(), err, a)
	}
	chmod = os.Chmod
	rootSynced := false
	syncs = func(name string) error {
		rootSynced = rootSynced || name == root
		return nil
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(a); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != 0o700 || !rootSynced {
		t.Errorf("%s: %v, %v, its parent synced %v; want it synced and 0700 after the next Open", a, fi.Mode(), err, rootSynced)
	}
}

// A full disk (ENOSPC writing the record's new copy): the list's
// back-off was lost with the write, and whoever read the record took the
// list for one not tried yet. It is kept in the file's time, which
// needs no room, and read back with the record.
func TestUnreadListBackOffKeptOnFullDisk(t *testing.T) {
	defer func() { syncs = nil }()
	q := openQ(t)
	list := mkPath("cachix-packages-dev")
	if err := q.AddUnreadList(list, "input/output error", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	u, err := q.ReadUnreadList(list.Hash)
	if err != nil || u.Attempts != 0 {
		t.Fatalf("ReadUnreadList = %+v, %v", u, err)
	}
	syncs = func(string) error { return syscall.ENOSPC }
	next := time.Now().Add(time.Hour).Truncate(time.Second)
	u.Attempts, u.NextAttempt = 1, next
	if err := q.UpdateUnreadList(u); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("UpdateUnreadList on a full disk = %v, want ENOSPC said", err)
	}
	syncs = nil
	u, err = q.ReadUnreadList(list.Hash)
	if err != nil || u.Attempts != 1 || !u.NextAttempt.Equal(next) {
		t.Errorf("ReadUnreadList = %+v, %v; want 1 attempt, next at %v", u, err, next)
	}
}

// The same, with the pin aside linked back by the worker between this
// push's ask and its link, and another pin in the same push queued anew:
// the link found the old pin, this push's ask became its keep, and
// AddPins then took that ask as a stale one, its own pin being queued:
// the old pin was made with the old keep push did not say.
func TestPinAsideLinkedBackAsItIsQueuedAnewKeepsThisPushsKeep(t *testing.T) {
	q := openQ(t)
	key, _, now := pinAskedAgainAsDropped(t, q)
	if err := os.Rename(q.path(pinsDir, key), q.path(tmpDir, pinAside+key)); err != nil {
		t.Fatal(err)
	}
	q.pinAskRewritten = func(name string) {
		if left, err := q.RelinkPinsAside(); left != 0 || err != nil {
			t.Errorf("RelinkPinsAside = %d, %v", left, err)
		}
	}
	keep := Keep{Days: 3}
	pins := []Pin{
		{Target: "main", Path: mkPath("system-1").String(), Name: "sys", Keep: keep},
		{Target: "other", Path: mkPath("system-1").String(), Name: "sys", Keep: keep},
	}
	if n, err := q.AddPins(pins, now.Add(2*time.Second)); n != 1 || err != nil {
		t.Fatalf("AddPins = %d, %v; want the other target's pin new", n, err)
	}
	q.pinAskRewritten = nil
	p, err := q.ReadPin(key)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := q.PinAsked(key); ok && a.New(p) {
		a.Apply(p) // as the worker takes it
	}
	if p.Keep != keep {
		t.Errorf("the pin linked back reads with keep %+v, want this push's %+v", p.Keep, keep)
	}
}

// Open walked up from the queue directory on every run, to / for root,
// and took any directory of the running user's with mode 01701 there
// for one it had made and left marked: an admin's, above a directory
// Open did not make, lost its others' execute bit. Only the parent of a
// directory found marked or made is looked at.
func TestOpenLeavesAdminParentAboveItsOwnDirectory(t *testing.T) {
	admin := filepath.Join(t.TempDir(), "admin")
	if err := os.Mkdir(admin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(admin, parentMark); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(admin, "mine")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mine, "queue")
	for range 2 {
		if _, err := Open(dir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(admin); err != nil || fi.Mode()&(fs.ModeSticky|fs.ModePerm) != parentMark {
			t.Errorf("%s: %v, %v; want the admin's 01701 left as it is", admin, fi.Mode(), err)
		}
	}
}
