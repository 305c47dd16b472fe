// Package fdstest runs a test's code out of file descriptors (EMFILE), as
// a busy machine may leave the hook or the worker: a read of the moment
// fails. It is for tests only.
package fdstest

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// WithDescriptors runs do with spare descriptors left to open (EMFILE
// past them), or skips the test where the limit cannot be lowered. The
// limit is the process's: do must not run beside code that opens files
// (see Starved).
func WithDescriptors(t testing.TB, spare uint64, do func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// The lowest free descriptor: every one below it is taken.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	low := syscall.Rlimit{Cur: uint64(f.Fd()) + spare, Max: old.Max}
	f.Close()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	// Restored also when do fails the test: the package's later tests
	// would run with no descriptor to spare.
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	do()
}

// Starved runs do with no descriptor to spare until its error is EMFILE,
// and returns what it returned: call it while nothing else of the test
// runs (before the hook's or the worker's goroutines start), as the limit
// is the process's. A descriptor a finalizer closes meanwhile (a file an
// earlier test leaked) lets do open one: it is tried again, a few times.
func Starved[T any](t testing.TB, do func() (T, error)) (T, error) {
	t.Helper()
	var v T
	var err error
	for range 5 {
		WithDescriptors(t, 0, func() { v, err = do() })
		if errors.Is(err, syscall.EMFILE) {
			return v, err
		}
	}
	t.Fatalf("out of descriptors, still not EMFILE: %v", err)
	return v, err
}
