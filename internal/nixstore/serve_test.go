package nixstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// serveReply builds what a nix-store --serve says: ints, and strings
// (a length, the bytes, zeros to 8).
type serveReply struct{ bytes.Buffer }

func (r *serveReply) int(v uint64) *serveReply {
	binary.Write(&r.Buffer, binary.LittleEndian, v)
	return r
}

func (r *serveReply) str(s string) *serveReply {
	r.int(uint64(len(s)))
	r.WriteString(s)
	r.Write(make([]byte, (8-len(s)%8)%8))
	return r
}

func (r *serveReply) strs(ss ...string) *serveReply {
	r.int(uint64(len(ss)))
	for _, s := range ss {
		r.str(s)
	}
	return r
}

func (r *serveReply) info(path, deriver string, size uint64, refs ...string) *serveReply {
	return r.str(path).str(deriver).strs(refs...).int(size).int(size).str("sha256:x").str("").strs("cache-1:sig")
}

func hello() *serveReply { return new(serveReply).int(serveMagic2).int(2<<8 | 7) }

func TestServeConn(t *testing.T) {
	a, b := "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
	gone := "/nix/store/cccccccccccccccccccccccccccccccc-gone"
	for _, c := range []struct {
		name      string
		recursive bool
		reply     *serveReply
		want      string // the infos, or the error
	}{
		{"flat", false, hello().info(a, "/nix/store/x-a.drv", 120, b).str(""),
			fmt.Sprintf("%s valid 120 /nix/store/x-a.drv [%s] [cache-1:sig]\n%s invalid", a, b, gone)},
		{"recursive", true, hello().info(a, "", 120, b).str("").info(b, "", 130).str(""),
			fmt.Sprintf("%s valid 120  [%s] [cache-1:sig]\n%s valid 130  [] [cache-1:sig]\n%s invalid", a, b, b, gone)},
		{"none valid", true, hello().str(""), gone + " invalid"},
		{"no serve", false, new(serveReply).str("error: unknown flag"), "did not answer the handshake"},
		{"old protocol", false, new(serveReply).int(serveMagic2).int(2<<8 | 3), "protocol 2.3"},
		{"huge string", false, hello().int(1 << 40), "a string of 1099511627776 bytes"},
		{"huge set", false, hello().str(a).str("").int(1 << 40), "a set of 1099511627776 strings"},
		{"bad padding", false, hello().int(1).int(0xff00), "bad padding"},
		{"cut short", false, hello().info(a, "", 120), "EOF"},
		{"size out of range", false, hello().info(a, "", 1<<63).str(""), "NAR size out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := &serveConn{r: bufio.NewReader(bytes.NewReader(c.reply.Bytes())), w: bufio.NewWriter(io.Discard)}
			paths := []string{a, gone}
			if c.name == "none valid" {
				paths = []string{gone}
			}
			infos, err := conn.pathInfos(c.recursive, paths)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				var lines []string
				for _, i := range infos {
					if !i.Valid {
						lines = append(lines, i.Path+" invalid")
						continue
					}
					lines = append(lines, fmt.Sprintf("%s valid %d %s %v %v", i.Path, i.NarSize, i.Deriver, i.References, i.Signatures))
				}
				got = strings.Join(lines, "\n")
			}
			if !strings.Contains(got, c.want) || err == nil && got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			if c.name == "no serve" && !errors.Is(err, errNoServe) {
				t.Errorf("error %v is not errNoServe", err)
			}
		})
	}
}

// The serve protocol and `nix path-info --json` say the same of real
// paths (a built app, its dependency, a path not in the store), flat and
// recursive; and PathInfos takes the serve protocol.
func TestServeMatchesPathInfoJSON(t *testing.T) {
	salt := nixtest.Salt()
	_, outs := nixtest.Build(t, fmt.Sprintf(`let dep = derivation { name = "sv-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; };
in derivation { name = "sv-app"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out" ]; }`, salt))
	missing := "/nix/store/00000000000000000000000000000000-sv-missing"
	paths := []string{outs[0], missing}
	for _, recursive := range []bool{false, true} {
		served, err := Nix{}.servePathInfos(context.Background(), recursive, paths)
		if err != nil {
			t.Fatalf("recursive %v: %v", recursive, err)
		}
		json, err := Nix{}.pathInfos(context.Background(), recursive, maxArgBytes, paths)
		if err != nil {
			t.Fatal(err)
		}
		s := byPath(served)
		if !slices.Equal(slices.Sorted(maps.Keys(s)), slices.Sorted(maps.Keys(json))) {
			t.Fatalf("recursive %v: serve gave %v, path-info %v", recursive, slices.Sorted(maps.Keys(s)), slices.Sorted(maps.Keys(json)))
		}
		for p, j := range json {
			v := s[p]
			if v.Valid != j.Valid || v.NarSize != j.NarSize || v.Deriver != j.Deriver || !slices.Equal(v.References, j.References) || len(v.Signatures) != len(j.Signatures) {
				t.Errorf("recursive %v, %s: serve %+v, path-info %+v", recursive, p, v, j)
			}
		}
		if len(json) != map[bool]int{false: 2, true: 3}[recursive] {
			t.Errorf("recursive %v: %d infos", recursive, len(json))
		}
	}
}

// TestServeReturnsOnTheWholeAnswer: a nix-store that has answered is not
// waited for (it may take a while to end: 14 ms after 10,000 infos); one
// that lingers after its answer costs PathInfos nothing.
func TestServeReturnsOnTheWholeAnswer(t *testing.T) {
	// In a bubble, the clock of stop's one-second grace moves only when
	// every goroutine in it waits on the bubble (not on the process, not
	// while this one looks at it): a slow or descheduled test cannot see
	// the process killed by that grace and take it for one waited for.
	synctest.Test(t, serveReturnsOnTheWholeAnswer)
}

func serveReturnsOnTheWholeAnswer(t *testing.T) {
	dir := t.TempDir()
	p := "/nix/store/00000000000000000000000000000000-sv-slow"
	reply := hello().info(p, "", 100).str("")
	if err := os.WriteFile(filepath.Join(dir, "reply"), reply.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// cat, then stdout still open until the test lets it go (30 s at
	// most): a PathInfos that waits for the process after the answer
	// (or stops it: in the bubble, at its own end) returns with it gone.
	release, pidFile := filepath.Join(dir, "release"), filepath.Join(dir, "pid")
	script := "#!/bin/sh\necho $$ >" + pidFile + "\ncat " + filepath.Join(dir, "reply") + "\nfor i in $(seq 600); do [ -e " + release + " ] && break; sleep 0.05; done\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-store"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	letGo := func() { os.WriteFile(release, nil, 0o644) }
	t.Cleanup(func() {
		// Gone before release is removed with dir: the grace that
		// would kill it does not pass while it runs (see above).
		letGo()
		for serverRunning(pidFile, filepath.Join(dir, "nix-store")) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	infos, err := Nix{BinDir: dir}.servePathInfos(context.Background(), false, []string{p})
	running := serverRunning(pidFile, filepath.Join(dir, "nix-store"))
	letGo()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Path != p || infos[0].NarSize != 100 {
		t.Errorf("infos = %+v", infos)
	}
	if !running {
		t.Errorf("servePathInfos returned with the process gone: it waited for the process after its whole answer")
	}
}

// serverRunning tells whether the process whose pid is in pidFile runs
// the program prog: it exists, is not a zombie, and is not another
// process that took the pid of one reaped.
func serverRunning(pidFile, prog string) bool {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	proc := "/proc/" + strings.TrimSpace(string(b))
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return false
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte(prog)) {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	state := strings.TrimSpace(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return state != "" && state[0] != 'Z' && state[0] != 'X'
}

// The serve protocol's content address is kept: an unsigned
// content-addressed path claiming a deriver counts as added until nix
// path-info says Nix built it here.
func TestServeContentAddress(t *testing.T) {
	a := "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
	reply := hello().str(a).str("/nix/store/x-a.drv").strs().int(1).int(1).str("sha256:x").str("fixed:r:sha256:x").strs().str("")
	conn := &serveConn{r: bufio.NewReader(bytes.NewReader(reply.Bytes())), w: bufio.NewWriter(io.Discard)}
	infos, err := conn.pathInfos(false, []string{a})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].ContentAddressed() || !infos[0].Added() {
		t.Errorf("infos = %+v, want a content-addressed path, counted as added", infos)
	}
}
