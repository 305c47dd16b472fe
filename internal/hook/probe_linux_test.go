package hook

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// lockOpens counts the opens of the worker's lock in dir (each probe of
// it opens it) while do runs, by inotify: probes, not time. Closes are
// watched too: inotify merges an event with the same one unread before
// it, and open, close, open are three.
func lockOpens(t *testing.T, dir string, do func()) int {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skip(err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, filepath.Join(dir, "lock"), syscall.IN_OPEN|syscall.IN_CLOSE); err != nil {
		t.Fatal(err)
	}
	do()
	n := 0
	buf := make([]byte, 64<<10)
	for {
		m, err := syscall.Read(fd, buf)
		if err != nil || m <= 0 {
			break
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= m; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&syscall.IN_OPEN != 0 {
				n++
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
	return n
}

// A build that queues paths and records a list to read again needs one
// worker: the hook probes its lock once, as for any build (the hook's
// path is what every build pays for).
func TestRunListRecordedAndQueuedProbesOnce(t *testing.T) {
	rec := isolate(t)
	listStore(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeFile(t, fmt.Sprintf("cache = \"mycache\"\nallow = [\"app-*\"]\npackage_lists = true\n[queue]\ndir = %q\n", dir))
	l := fakeList(t, "cachix-packages-dev", nil, mkPath("myapp-1.0"))
	app := mkPath("app-1.0")
	read := readOutOfDescriptors(t, l)
	var out bytes.Buffer
	n := lockOpens(t, dir, func() {
		if st := run(context.Background(), cfgFile, Env{OutPaths: l.String() + " " + app.String()}, &out, read); st != 0 {
			t.Errorf("run = %d\n%s", st, out.String())
		}
	})
	if es := entries(t, dir); len(es) != 1 || es[0].Path != app.String() {
		t.Errorf("queued %+v\n%s", es, out.String())
	}
	if names, err := (&queue.Queue{Dir: dir}).UnreadListNames(); err != nil || len(names) != 1 {
		t.Errorf("lists to read again = %q, %v\n%s", names, err, out.String())
	}
	if n != 1 {
		t.Errorf("the worker's lock was probed %d times, want once", n)
	}
	noSpawn(t, rec)
}
