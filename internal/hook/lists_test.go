package hook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds/fdstest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist/pkglisttest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// fakeList writes a package list into a store directory of the test's own
// (NIX_STORE_DIR), as cachixPackages builds it, naming paths.
func fakeList(t testing.TB, name string, targets []string, paths ...storepath.Path) storepath.Path {
	t.Helper()
	d := mkPath(name)
	pkglisttest.Write(t, d, mkPath(name+".list"), targets, paths...)
	return d
}

// listStore points NIX_STORE_DIR at a directory of the test's.
func listStore(t *testing.T) {
	t.Helper()
	t.Setenv("NIX_STORE_DIR", t.TempDir())
}

func entries(t *testing.T, dir string) []*queue.Entry {
	t.Helper()
	es, bad, err := (&queue.Queue{Dir: dir}).List()
	if err != nil || len(bad) > 0 {
		t.Fatalf("listing the queue: %v %v", err, bad)
	}
	return es
}

// The build of a list queues what it names, by its authority, with no
// allow rule; deny still wins; the line says it in the list's terms, and
// each entry carries the list for the worker to check.
func TestRunList(t *testing.T) {
	rec := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\ndeny = [\"secret-*\"]\npackage_lists = true\n[queue]\ndir = %q\n", dir))
	a, b, s := mkPath("openc910-2.3"), mkPath("myapp-1.0"), mkPath("secret-1")
	l := fakeList(t, "cachix-packages-dev", nil, a, b, s)
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: l.String()}, &out); st != 0 {
		t.Errorf("Run = %d", st)
	}
	want := "cachix-filter-hook: queued 2 of 3 listed in cachix-packages-dev: openc910-2.3, myapp-1.0 -> mycache (skipped secret-1: deny \"secret-*\")\n"
	if out.String() != want {
		t.Errorf("output:\n got %q\nwant %q", out.String(), want)
	}
	es := entries(t, dir)
	if len(es) != 2 {
		t.Fatalf("entries %+v", es)
	}
	for _, e := range es {
		if e.Listed != l.String() || e.Path == s.String() || e.Path == l.String() {
			t.Errorf("entry %+v", e)
		}
	}
	noSpawn(t, rec)
}

// Without package_lists nothing is queued, and the line says what it
// ignored and the one line that takes lists.
func TestRunListNotTaken(t *testing.T) {
	rec := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\nallow = [\"hello-*\"]\n[queue]\ndir = %q\n", dir))
	l := fakeList(t, "cachix-packages-dev", nil, mkPath("openc910-2.3"), mkPath("myapp-1.0"))
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: l.String()}, &out); st != 0 {
		t.Errorf("Run = %d", st)
	}
	want := "cachix-filter-hook: queued 0 of 2 listed in cachix-packages-dev (ignored openc910-2.3, myapp-1.0: no target takes package lists; add package_lists = true at the top of " + cfgFile + " to push what lists name)\n"
	if out.String() != want {
		t.Errorf("output:\n got %q\nwant %q", out.String(), want)
	}
	if _, err := os.Stat(dir); err == nil && len(entries(t, dir)) > 0 {
		t.Errorf("queued %+v", entries(t, dir))
	}
	noSpawn(t, rec)
}

// Two targets, one taking lists: only it gets them; a list naming a
// target queues for that one only.
func TestRunListTwoTargets(t *testing.T) {
	isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeFile(t, fmt.Sprintf(`
[[target]]
cache = "on"
package_lists = true
[[target]]
cache = "also"
package_lists = true
[[target]]
cache = "off"
allow = ["hello-*"]
[queue]
dir = %q
`, dir))
	a := mkPath("openc910-2.3")
	var out bytes.Buffer
	Run(context.Background(), cfgFile, Env{OutPaths: fakeList(t, "cachix-packages-all", nil, a).String()}, &out)
	Run(context.Background(), cfgFile, Env{OutPaths: fakeList(t, "cachix-packages-one", []string{"also"}, mkPath("myapp-1.0")).String()}, &out)
	want := "cachix-filter-hook: queued 1 of 1 listed in cachix-packages-all: openc910-2.3 -> on, also\n" +
		"cachix-filter-hook: queued 1 of 1 listed in cachix-packages-one: myapp-1.0 -> also\n"
	if out.String() != want {
		t.Errorf("output:\n got %q\nwant %q", out.String(), want)
	}
	var got []string
	for _, e := range entries(t, dir) {
		got = append(got, e.Target+":"+filepath.Base(e.Path)[33:])
	}
	if s := strings.Join(slices.Sorted(slices.Values(got)), " "); s != "also:myapp-1.0 also:openc910-2.3 on:openc910-2.3" {
		t.Errorf("queued %s", s)
	}
}

// A malformed or oversized list is said, naming it, and nothing of it
// is queued, not even the list.
func TestRunListBad(t *testing.T) {
	rec := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\nallow = [\"*\"]\nunsubstitutable = \"push\"\npackage_lists = true\n[queue]\ndir = %q\n", dir))
	l := fakeList(t, "cachix-packages-dev", nil, mkPath("openc910-2.3"))
	f, _ := os.Readlink(filepath.Join(l.String(), "manifest.nix"))
	os.Chmod(f, 0o644)
	if err := os.WriteFile(f, []byte(pkglist.Magic+"\n/etc/shadow\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Run(context.Background(), cfgFile, Env{OutPaths: l.String()}, &out)
	got := lines(out.String())
	if len(got) != 1 || !strings.Contains(got[0], "package list "+l.String()+" is malformed") || !strings.Contains(got[0], "nothing of it is queued") {
		t.Errorf("output:\n%s", out.String())
	}
	if _, err := os.Stat(dir); err == nil && len(entries(t, dir)) > 0 {
		t.Errorf("queued %+v", entries(t, dir))
	}
	noSpawn(t, rec)
}

// A list naming only targets the configuration does not have (a typo in
// its targets) is said as such: its paths were skipped as if an allow
// rule were missing, which a list needs none of.
func TestRunListForOtherTargets(t *testing.T) {
	isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\npackage_lists = true\n[queue]\ndir = %q\n", dir))
	l := fakeList(t, "cachix-packages-one", []string{"mycahce"}, mkPath("myapp-1.0"))
	var out bytes.Buffer
	Run(context.Background(), cfgFile, Env{OutPaths: l.String()}, &out)
	want := "cachix-filter-hook: queued 0 of 1 listed in cachix-packages-one (skipped myapp-1.0: no allow rule matches; listed in " + l.String() + " for mycahce only)\n"
	if out.String() != want {
		t.Errorf("output:\n got %q\nwant %q", out.String(), want)
	}
}

// readOutOfDescriptors reads package lists, l out of descriptors
// (EMFILE): a list that cannot be read at the hook's run. l is read so
// now, before the hook runs: its goroutines would find no descriptor
// either, or close one for l's read.
func readOutOfDescriptors(t *testing.T, l storepath.Path) func(storepath.Path) (*pkglist.List, error) {
	got, err := fdstest.Starved(t, func() (*pkglist.List, error) { return pkglist.Read(l) })
	return func(p storepath.Path) (*pkglist.List, error) {
		if p != l {
			return pkglist.Read(p)
		}
		return got, err
	}
}

// A list that cannot be read at the hook's run (EMFILE here, EIO on a
// failing disk) is built once: the hook records it in the queue for the
// worker to read again, and says so. A malformed list is refused for
// good, and not recorded.
func TestRunListUnreadableRecorded(t *testing.T) {
	rec := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\npackage_lists = true\n[queue]\ndir = %q\n", dir))
	l := fakeList(t, "cachix-packages-dev", nil, mkPath("myapp-1.0"))
	bad := fakeList(t, "cachix-packages-bad", nil, mkPath("other-1.0"))
	f, _ := os.Readlink(filepath.Join(bad.String(), "manifest.nix"))
	os.Chmod(f, 0o644)
	if err := os.WriteFile(f, []byte(pkglist.Magic+"\n/etc/shadow\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	read := readOutOfDescriptors(t, l)
	var out bytes.Buffer
	if st := run(context.Background(), cfgFile, Env{OutPaths: l.String() + " " + bad.String()}, &out, read); st != 0 {
		t.Errorf("run = %d", st)
	}
	if !strings.Contains(out.String(), "package list "+l.String()+" cannot be read now") || !strings.Contains(out.String(), "the worker reads it again") {
		t.Errorf("output:\n%s", out.String())
	}
	q := &queue.Queue{Dir: dir}
	names, err := q.UnreadListNames()
	if err != nil || len(names) != 1 || names[0] != l.Hash {
		t.Fatalf("lists to read again = %q, %v; want %s's alone", names, err, l)
	}
	u, err := q.ReadUnreadList(names[0])
	if err != nil || u.List != l.String() || !strings.Contains(u.LastError, "too many open files") {
		t.Errorf("record = %+v, %v", u, err)
	}
	if es := entries(t, dir); len(es) > 0 {
		t.Errorf("queued %+v", es)
	}
	noSpawn(t, rec)
}

// A list recorded to be read again needs a worker whatever else the
// build queues. The hook started one for it only when it selected no
// other path; one it selected but left out (in the record of pushed
// paths) made Enqueue return before starting a worker, and the list
// waited for some later build's.
func TestRunListRecordedStartsAWorkerWhenTheRestIsPushed(t *testing.T) {
	spawned := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\nallow = [\"app-*\"]\npackage_lists = true\n[queue]\ndir = %q\nremember_pushed = \"720h\"\n", dir))
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	app := mkPath("app-1.0")
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := pushed.OpenWrite(q.Dir, cfg.Targets[0].RecordKey(), cfg.Queue.RememberPushed)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := pushed.ParseHash(app.Hash)
	if err := rec.Add([]pushed.Hash{h}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rec.Close()
	l := fakeList(t, "cachix-packages-dev", nil, mkPath("myapp-1.0"))
	read := readOutOfDescriptors(t, l)
	var out bytes.Buffer
	if st := run(context.Background(), cfgFile, Env{OutPaths: l.String() + " " + app.String()}, &out, read); st != 0 {
		t.Errorf("run = %d\n%s", st, out.String())
	}
	if names, err := q.UnreadListNames(); err != nil || len(names) != 1 {
		t.Fatalf("lists to read again = %q, %v; want %s's\n%s", names, err, l, out.String())
	}
	started := false
	for pid := range children(t) {
		started = started || !spawned.before[pid]
	}
	if !started {
		t.Errorf("no worker started for the list recorded:\n%s", out.String())
	}
}

// Lists past what one run reads (pkglist.MaxLists, MaxTotalPaths) are
// recorded for the worker to read, as an unreadable one is, up to
// maxLeftLists a build; the line names those recorded, and those past
// that bound as left to push by hand.
func TestRunListsPastTheBoundRecorded(t *testing.T) {
	rec := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\npackage_lists = true\n[queue]\ndir = %q\n", dir))
	var ls []string
	var lists []storepath.Path
	for i := range pkglist.MaxLists + maxLeftLists + 2 {
		l := fakeList(t, fmt.Sprintf("cachix-packages-%03d", i), nil, mkPath(fmt.Sprintf("app-%d", i)))
		lists = append(lists, l)
		ls = append(ls, l.String())
	}
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: strings.Join(ls, " ")}, &out); st != 0 {
		t.Errorf("Run = %d", st)
	}
	if es := entries(t, dir); len(es) != pkglist.MaxLists {
		t.Errorf("%d entries, want the %d lists read's", len(es), pkglist.MaxLists)
	}
	// How many are recorded within maxLeftTime is the disk's to say
	// (TestRecordSkippedBounds counts them): the first are, the rest said.
	names, err := (&queue.Queue{Dir: dir}).UnreadListNames()
	n := len(names)
	if err != nil || n == 0 || n > maxLeftLists {
		t.Fatalf("%d lists recorded, %v; want 1 to %d", n, err, maxLeftLists)
	}
	left := lists[pkglist.MaxLists:]
	for _, l := range left[:n] {
		if !slices.Contains(names, l.Hash) {
			t.Errorf("%s not recorded", l)
		}
	}
	got := out.String()
	for _, want := range []string{
		fmt.Sprintf("%d package lists not read on the build's path", n),
		left[0].Name,
		"the worker reads them and queues what they select",
		fmt.Sprintf("%d package lists neither read nor recorded", len(left)-n),
		left[n].Name,
		"cachix-filter-hook push " + left[n].String(),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	noSpawn(t, rec)
}

// The line names the lists it read as it names paths: the first few, and
// how many more (a build may have pkglist.MaxLists of them, their names
// up to 211 bytes each), whether all it decided came from lists or not.
func TestRunListNamesBounded(t *testing.T) {
	for _, other := range []bool{false, true} {
		t.Run(fmt.Sprint(other), func(t *testing.T) {
			isolate(t)
			listStore(t)
			dir := filepath.Join(t.TempDir(), "queue")
			holdWorkerLock(t, dir)
			cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\nallow = [\"*\"]\npackage_lists = true\n[queue]\ndir = %q\n", dir))
			var ls []string
			for i := range pkglist.MaxLists {
				ls = append(ls, fakeList(t, fmt.Sprintf("cachix-packages-%03d", i), nil, mkPath(fmt.Sprintf("app-%d", i))).String())
			}
			if other {
				ls = append(ls, mkPath("other-1").String())
			}
			var out bytes.Buffer
			if st := Run(context.Background(), cfgFile, Env{OutPaths: strings.Join(ls, " ")}, &out); st != 0 {
				t.Errorf("Run = %d", st)
			}
			got := out.String()
			if !strings.Contains(got, "cachix-packages-000, ") || !strings.Contains(got, fmt.Sprintf("and %d more", pkglist.MaxLists-5)) || strings.Contains(got, "cachix-packages-031") {
				t.Errorf("the line does not name 5 lists and count the rest:\n%s", got)
			}
		})
	}
}

// Past maxLeftTime, the hook records no more lists for the worker, the
// first always: on a slow disk, 64 records of two fsyncs each would hold
// the build for seconds. Those left are said, with the fix.
func TestRecordSkippedWithinTime(t *testing.T) {
	listStore(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	var lists []storepath.Path
	for i := range 3 {
		lists = append(lists, fakeList(t, fmt.Sprintf("cachix-packages-%d", i), nil, mkPath(fmt.Sprintf("app-%d", i))))
	}
	var said []string
	say := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	open := func() (*queue.Queue, error) { return q, nil }
	if n := recordSkippedUntil(lists, open, say, time.Now().Add(-time.Second)); n != 1 {
		t.Errorf("recorded %d, want the first alone", n)
	}
	if names, err := q.UnreadListNames(); err != nil || !slices.Equal(names, []string{lists[0].Hash}) {
		t.Errorf("lists/ = %q, %v; want the first list's", names, err)
	}
	got := strings.Join(said, "\n")
	for _, want := range []string{
		"2 package lists neither read nor recorded to read again (recording took past " + maxLeftTime.String(),
		"cachix-filter-hook push " + lists[1].String(),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// Within its time, the hook records maxLeftLists lists at most; the line
// names the rest, with the fix.
func TestRecordSkippedBounds(t *testing.T) {
	listStore(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	var lists []storepath.Path
	for i := range maxLeftLists + 2 {
		lists = append(lists, fakeList(t, fmt.Sprintf("cachix-packages-%03d", i), nil, mkPath(fmt.Sprintf("app-%d", i))))
	}
	var said []string
	say := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	open := func() (*queue.Queue, error) { return q, nil }
	if n := recordSkippedUntil(lists, open, say, time.Now().Add(time.Hour)); n != maxLeftLists {
		t.Errorf("recorded %d, want %d", n, maxLeftLists)
	}
	if names, err := q.UnreadListNames(); err != nil || len(names) != maxLeftLists {
		t.Errorf("%d in lists/, %v; want %d", len(names), err, maxLeftLists)
	}
	got := strings.Join(said, "\n")
	for _, want := range []string{
		fmt.Sprintf("%d package lists not read on the build's path", maxLeftLists),
		lists[0].Name + ", ",
		fmt.Sprintf("2 package lists neither read nor recorded to read again (beyond the first %d", maxLeftLists),
		lists[len(lists)-2].Name + ", " + lists[len(lists)-1].Name,
		"cachix-filter-hook push " + lists[len(lists)-2].String(),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// The lists past the bound are recorded in lists/ only up to
// queue.MaxSkippedLists, whoever filled it: the rest of it is kept for
// lists that could not be read, so that one of another build is not said
// lost.
func TestRecordSkippedLeavesRoomForUnreadable(t *testing.T) {
	listStore(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	lists := filepath.Join(q.Dir, "lists")
	if err := os.Mkdir(lists, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range queue.MaxSkippedLists {
		if err := os.WriteFile(filepath.Join(lists, fmt.Sprintf("x%d", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l := fakeList(t, "cachix-packages-past", nil, mkPath("app-1"))
	var said []string
	say := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	open := func() (*queue.Queue, error) { return q, nil }
	if n := recordSkippedUntil([]storepath.Path{l}, open, say, time.Now().Add(time.Hour)); n != 0 {
		t.Errorf("recorded %d past %d in lists/, want none", n, queue.MaxSkippedLists)
	}
	if got := strings.Join(said, "\n"); !strings.Contains(got, "1 package lists neither read nor recorded") {
		t.Errorf("output does not say the list is not recorded:\n%s", got)
	}
}

// Lists cut both by the time and by the count are said with both
// reasons, not with the first alone.
func TestRecordSkippedSaysEveryReason(t *testing.T) {
	listStore(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	var lists []storepath.Path
	for i := range maxLeftLists + 1 {
		lists = append(lists, fakeList(t, fmt.Sprintf("cachix-packages-%03d", i), nil, mkPath(fmt.Sprintf("app-%d", i))))
	}
	var said []string
	say := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	open := func() (*queue.Queue, error) { return q, nil }
	recordSkippedUntil(lists, open, say, time.Now().Add(-time.Second))
	got := strings.Join(said, "\n")
	for _, want := range []string{"recording took past " + maxLeftTime.String(), fmt.Sprintf("beyond the first %d", maxLeftLists)} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// With lists/ full, none of the first maxLeftLists lists is recorded,
// and the line said of those past them "64 recorded already": a count of
// records where there was none. It says where the bound cut instead.
func TestRecordSkippedFullSaysNoneRecorded(t *testing.T) {
	listStore(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(q.Dir, "lists")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range queue.MaxSkippedLists {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("x%d", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var lists []storepath.Path
	for i := range maxLeftLists + 1 {
		lists = append(lists, fakeList(t, fmt.Sprintf("cachix-packages-%03d", i), nil, mkPath(fmt.Sprintf("app-%d", i))))
	}
	var said []string
	say := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	open := func() (*queue.Queue, error) { return q, nil }
	if n := recordSkippedUntil(lists, open, say, time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("recorded %d in a full lists/, want none", n)
	}
	got := strings.Join(said, "\n")
	if strings.Contains(got, "recorded already") {
		t.Errorf("the line counts records there were none of:\n%s", got)
	}
	for _, want := range []string{fmt.Sprintf("%d package lists neither read nor recorded", maxLeftLists+1), "the most it keeps", fmt.Sprintf("beyond the first %d", maxLeftLists)} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
