package nixstore

import (
	"bufio"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseDrvOutputs(t *testing.T) {
	for _, tc := range []struct {
		name, drv string
		want      []string
		err       string
	}{
		{"one", `Derive([("out","/nix/store/21dabvn495n4pyfxwr5k9hc32613a0xv-p2-1.0","","")],[],[],"x86_64-linux")`,
			[]string{"/nix/store/21dabvn495n4pyfxwr5k9hc32613a0xv-p2-1.0"}, ""},
		{"several", `Derive([("doc","/nix/store/a-doc","",""),("out","/nix/store/a","","")],[`,
			[]string{"/nix/store/a-doc", "/nix/store/a"}, ""},
		{"fixed-output", `Derive([("out","/nix/store/b-src","sha256","0123")],`, []string{"/nix/store/b-src"}, ""},
		{"escapes", `Derive([("out","/nix/store/c\"q","","")]`, []string{`/nix/store/c"q`}, ""},
		{"content-addressed", `Derive([("out","","r:sha256","")],`, nil, ErrNoPaths.Error()},
		{"not a derivation", `{"out": 1}`, nil, "not a derivation"},
		{"truncated", `Derive([("out","/nix/st`, nil, "unexpected EOF"},
		{"empty", ``, nil, "unexpected EOF"},
		{"garbage between", `Derive([("out","/a","","");("x","/b","","")]`, nil, "unexpected"},
		{"string too long", `Derive([("out","` + strings.Repeat("x", 5000) + `","","")]`, nil, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDrvOutputs(bufio.NewReader(strings.NewReader(tc.drv)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if tc.err == ErrNoPaths.Error() && !errors.Is(err, ErrNoPaths) {
					t.Errorf("err = %v, want ErrNoPaths", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseDrvOutputs(f *testing.F) {
	f.Add(`Derive([("out","/nix/store/a","","")],`)
	f.Add(`Derive([("out","","r:sha256","")]`)
	f.Fuzz(func(t *testing.T, s string) {
		parseDrvOutputs(bufio.NewReader(strings.NewReader(s)))
	})
}

func TestDrvOutputsRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.drv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := DrvOutputs(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("DrvOutputs(fifo) = %v, want a refusal", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DrvOutputs blocked on a FIFO")
	}
}
