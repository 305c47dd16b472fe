package config

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// Place reads the config again for a key's line: under the trust rule,
// as Load does, so that a FIFO put in its place (by whoever may write
// there) does not block validate and doctor for as long as nobody writes
// it. The test opens the FIFO for writing, without blocking, which only
// works while a reader holds it: Place opening it is seen, never timed.
func TestPlaceDoesNotOpenFIFO(t *testing.T) {
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), minimal+"[cachix]\nauth_token_file = \"/run/token\"\n")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Place("cachix.auth_token_file"), file+":6"; got != want {
		t.Fatalf("Place = %q, want %q", got, want)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(file, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	go func() { done <- c.Place("cachix.auth_token_file") }()
	for {
		select {
		case got := <-done:
			if got != file {
				t.Errorf("Place of a FIFO = %q, want %q", got, file)
			}
			return
		default:
		}
		if w, err := os.OpenFile(file, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			t.Error("Place opened a FIFO, and waits for a writer")
			w.Close() // lets it go
			<-done
			return
		}
		runtime.Gosched()
	}
}
