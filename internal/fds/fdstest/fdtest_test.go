package fdstest

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
)

func limit(t *testing.T) uint64 {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	return l.Cur
}

// spare descriptors open, the next fails with EMFILE, and the limit is
// back afterwards.
func TestWithDescriptors(t *testing.T) {
	before := limit(t)
	for _, spare := range []uint64{0, 2} {
		var opened int
		var err error
		WithDescriptors(t, spare, func() {
			for {
				var f *os.File
				if f, err = os.Open(os.DevNull); err != nil {
					return
				}
				defer f.Close()
				opened++
			}
		})
		if opened != int(spare) || !errors.Is(err, syscall.EMFILE) {
			t.Errorf("spare %d: opened %d, then %v; want %d, then EMFILE", spare, opened, err, spare)
		}
		if got := limit(t); got != before {
			t.Errorf("spare %d: limit %d after, want %d restored", spare, got, before)
		}
	}
}

// A do that stops its goroutine (t.FailNow does) leaves the limit
// restored.
func TestWithDescriptorsRestoresOnFailNow(t *testing.T) {
	before := limit(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		WithDescriptors(t, 0, runtime.Goexit)
	}()
	<-done // Goexit runs the deferred close: this cannot hang.
	if got := limit(t); got != before {
		t.Errorf("limit %d after do stopped its goroutine, want %d restored", got, before)
	}
}

// Starved returns do's EMFILE, and tries do again when a descriptor
// freed meanwhile let it open one.
func TestStarved(t *testing.T) {
	tries := 0
	_, err := Starved(t, func() (int, error) {
		tries++
		if tries == 1 {
			return 0, nil // as if a finalizer had closed a file
		}
		f, err := os.Open(os.DevNull)
		if err == nil {
			f.Close()
		}
		return 0, err
	})
	if !errors.Is(err, syscall.EMFILE) || tries != 2 {
		t.Errorf("Starved = %v after %d tries, want EMFILE after 2", err, tries)
	}
}
