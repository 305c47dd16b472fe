package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// scCrafted is a derivation with 302 outputs (out, doc, o0..o299) whose
// out is a 60 MiB file of base32 text made of pieces of its siblings'
// hash parts (first and last 8 characters), never a whole one: a build
// anyone may ask for, made to slow a scan that searches once per sibling.
func scCrafted(salt string) string {
	outs := []string{"out", "doc"}
	for i := range 300 {
		outs = append(outs, fmt.Sprintf("o%d", i))
	}
	var script strings.Builder
	script.WriteString("piece=;")
	for _, o := range outs[1:] {
		// dash: ${h%…} and ${h#…} cut 24 characters off either end.
		fmt.Fprintf(&script, ` h=${%s#"$NIX_STORE"/}; h=${h%%%%-*}; piece="$piece${h%%????????????????????????}${h#????????????????????????}"; echo %s > $%s;`, o, salt, o)
	}
	// Doubled from 4.8 KB to 79 MB in files, then cut at 60 MiB (under
	// the scan's 64 MiB), with the host's tools (the build is not
	// sandboxed on Debian's Nix).
	script.WriteString(` echo "$piece" > $TMPDIR/a; i=0; while [ $i -lt 14 ]; do /bin/cat $TMPDIR/a $TMPDIR/a > $TMPDIR/b; /bin/mv $TMPDIR/b $TMPDIR/a; i=$((i+1)); done; /usr/bin/head -c 62914560 $TMPDIR/a > $out`)
	q := make([]string, len(outs))
	for i, o := range outs {
		q[i] = fmt.Sprintf("%q", o)
	}
	// In a Nix string, ${ starts an antiquotation: \${ is the shell's.
	arg := strings.ReplaceAll(fmt.Sprintf("%q", script.String()), "${", `\${`)
	return fmt.Sprintf(`derivation { name = "crafted-1.0"; salt = %q; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ %s ]; args = [ "-c" %s ]; }`,
		salt, strings.Join(q, " "), arg)
}

// The 302-output build of issue 18 (defect 5): the hook, run as Nix runs
// it on that build's outputs, returns within its scan's deadline (300 ms,
// checked per chunk read) and a process's start-up; it held the build 15
// s when the scan searched once per sibling and checked its deadline only
// between files. Its line claims nothing about the closure it could not
// finish reading.
func TestHookScan302Outputs(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["crafted-*"]
deny = ["*-doc"]
`)
	release := plLockQueue(t, e.Queue) // no worker: the hook's run alone
	defer func() {
		release()
		if _, errOut, code := e.Run(t.Context(), "forget", "--target", "file://"+e.Dir+"/cache"); code != 0 {
			t.Logf("forget: %s", errOut)
		}
	}()
	paths, _, _ := e.BuildWith("/bin/true", scCrafted(nixtest.Salt()))
	if len(paths) != 302 {
		t.Fatalf("built %d outputs, want 302", len(paths))
	}
	drv, err := exec.Command("nix-store", "--query", "--deriver", paths[0]).Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hookBin)
	cmd.Env = e.environ("OUT_PATHS="+strings.Join(paths, " "), "DRV_PATH="+strings.TrimSpace(string(drv)))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	t.Logf("the hook on 302 outputs, one of 60 MiB: %s\n%s", took, out)
	if err != nil || !strings.Contains(string(out), "queued 301 of 302 paths") {
		t.Errorf("hook: %v\n%s", err, out)
	}
	// What held the build was work, a scan reading on past its deadline;
	// its CPU time, unlike the wall time, does not grow with the load on
	// the machine: 300 ms of scan at most and a hook's start-up.
	if cmd.ProcessState != nil {
		if cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(); cpu > 4*time.Second {
			t.Errorf("the hook used %s of CPU (%s in all): its scan did not stop at its deadline", cpu, took)
		}
	}
}
