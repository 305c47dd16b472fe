package nixstore

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
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
	case <-time.After(eventually.Left(t)):
		t.Fatal("DrvOutputs did not return: it blocked opening or reading a FIFO")
	}
}

func TestParseDrvAllowSubstitutes(t *testing.T) {
	const head = `Derive([("out","/nix/store/zzc2hdmkybkhympxniy8hryqzmhz95kd-as-false","","")],[("/nix/store/a.drv",["out"])],["/nix/store/src"],"x86_64-linux","/bin/sh",["-c","echo \"hi\" > $out"],`
	for _, tc := range []struct {
		name, env string
		want      bool
		err       string
	}{
		{"false (Nix 2.8 writes \"\")", `[("allowSubstitutes",""),("builder","/bin/sh")])`, false, ""},
		{"true", `[("allowSubstitutes","1"),("builder","/bin/sh")])`, true, ""},
		{"unset", `[("builder","/bin/sh"),("preferLocalBuild","1")])`, true, ""},
		{"other value is false, as for Nix", `[("allowSubstitutes","0")])`, false, ""},
		{"empty env", `[])`, true, ""},
		{"structured false", `[("__json","{\"allowSubstitutes\":false,\"name\":\"x\"}"),("out","/nix/store/x")])`, false, ""},
		{"structured true", `[("__json","{\"allowSubstitutes\":true}")])`, true, ""},
		{"structured unset", `[("__json","{\"name\":\"x\\ny\"}")])`, true, ""},
		{"structured not a bool", `[("__json","{\"allowSubstitutes\":\"no\"}")])`, true, ""},
		// Nix reads structured attributes from __json alone: an env
		// entry of the same name (env.allowSubstitutes) does not count.
		{"structured false, env true", `[("__json","{\"allowSubstitutes\":false}"),("allowSubstitutes","1")])`, false, ""},
		{"structured unset, env false", `[("__json","{}"),("allowSubstitutes","")])`, true, ""},
		// Nix looks the key up as spelt; Go's json would take a key
		// differing in case (sorted after it by Nix) for it.
		{"structured false, other case true", `[("__json","{\"allowSubstitutes\":false,\"allowsubstitutes\":true}")])`, false, ""},
		{"structured only other case false", `[("__json","{\"AllowSubstitutes\":false}")])`, true, ""},
		{"a value that looks like the key", `[("x","(\"allowSubstitutes\",\"\")")])`, true, ""},
		{"truncated env", `[("allowSubstitutes",""`, false, "unexpected EOF"},
		{"garbage", `{"env":1}`, false, "not a derivation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseDrv(bufio.NewReader(strings.NewReader(head+tc.env)), false)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.AllowSubstitutes != tc.want {
				t.Errorf("AllowSubstitutes = %v, want %v", d.AllowSubstitutes, tc.want)
			}
			if !slices.Equal(d.Outputs, []string{"/nix/store/zzc2hdmkybkhympxniy8hryqzmhz95kd-as-false"}) {
				t.Errorf("Outputs = %q", d.Outputs)
			}
		})
	}
	deep := head + strings.Repeat("[", 100)
	if _, err := parseDrv(bufio.NewReader(strings.NewReader(deep)), false); err == nil {
		t.Error("deep nesting: no error")
	}
}

func FuzzParseDrv(f *testing.F) {
	f.Add(`Derive([("out","/nix/store/a","","")],[],[],"x","/bin/sh",[],[("allowSubstitutes","")])`)
	f.Fuzz(func(t *testing.T, s string) {
		parseDrv(bufio.NewReader(strings.NewReader(s)), false)
	})
}

// TestReadDrvRealNix reads the .drv files Nix writes for allowSubstitutes
// = false, true, and false with __structuredAttrs.
func TestReadDrvRealNix(t *testing.T) {
	nixtest.Require(t)
	expr := `{
 no = derivation { name = "rd-no"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo > $out"]; allowSubstitutes = false; };
 yes = derivation { name = "rd-yes"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo > $out"]; allowSubstitutes = true; };
 plain = derivation { name = "rd-plain"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo > $out"]; };
 structured = derivation { name = "rd-struct"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo > $out"]; __structuredAttrs = true; allowSubstitutes = false; };
}`
	file := filepath.Join(t.TempDir(), "d.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[string]bool{"no": false, "yes": true, "plain": true, "structured": false} {
		out, err := exec.Command("nix-instantiate", file, "-A", attr).Output()
		if err != nil {
			t.Fatalf("nix-instantiate -A %s: %v", attr, err)
		}
		d, err := ReadDrv(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("%s: %v", attr, err)
		}
		if d.AllowSubstitutes != want || len(d.Outputs) != 1 {
			t.Errorf("%s: AllowSubstitutes = %v, outputs %q; want %v", attr, d.AllowSubstitutes, d.Outputs, want)
		}
	}
	if _, err := ReadDrv("/nix/store/00000000000000000000000000000000-gone.drv"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing .drv: err = %v, want ErrNotExist", err)
	}
}
