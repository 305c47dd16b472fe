package worker

import (
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// leased holds a write lease on file, a regular file, until release (or
// the test's end): meanwhile an open of it for reading without blocking,
// as the queue opens an entry, fails with EWOULDBLOCK. An error of the
// moment, not the file's: a socket, which open refuses too, is the file's.
func leased(t *testing.T, file string) (release func()) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		f.Close()
		if os.Getenv("CI") == "true" {
			// Where CI runs (ext4 here), leases work: a skip there
			// would hide the test.
			t.Fatalf("cannot take a lease on %s: %v", file, err)
		}
		t.Skipf("cannot take a lease on %s: %v", file, err)
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}
