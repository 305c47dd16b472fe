// Package fdstest runs a test's code out of file descriptors (EMFILE), as
// a busy machine may leave the hook or the worker: a read of the moment
// fails. It is for tests only.
package fdstest

import (
	"os"
	"syscall"
	"testing"
)

// WithDescriptors runs do with spare descriptors left to open (EMFILE
// past them), or skips the test where the limit cannot be lowered. The
// limit is the process's: do must not run beside code that opens files.
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
