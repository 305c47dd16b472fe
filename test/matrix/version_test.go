package matrix

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// suiteNix is the Nix each Debian suite of the matrix is documented to
// ship (README.md's "Nix versions tested", docs/nix-checks.md): minor
// versions from min to max, inclusive. sid moves: up to 2.39 is accepted
// (still the same Nix line, the tests' expectations hold), anything else
// fails so that the tables and the tests are looked at again.
var suiteNix = map[string]struct{ min, max int }{
	"trixie": {26, 26},
	"sid":    {34, 39},
}

var nixVersionRe = regexp.MustCompile(`\(Nix\) (\d+)\.(\d+)\.(\d+)`)

// checkSuiteNix checks `nix --version`'s output against the suite's Nix.
func checkSuiteNix(suite, version string) error {
	want, ok := suiteNix[suite]
	if !ok {
		return fmt.Errorf("chroot for suite %q runs %q: no Nix version is known for this suite (known: trixie, sid); add it to suiteNix in test/matrix/version_test.go and to the tables in README.md and docs/nix-checks.md", suite, version)
	}
	m := nixVersionRe.FindStringSubmatch(version)
	if m == nil {
		return fmt.Errorf("chroot for suite %s: cannot read a Nix version from %q", suite, version)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major != 2 || minor < want.min || minor > want.max {
		expect := fmt.Sprintf("2.%d.x", want.min)
		if want.max != want.min {
			expect = fmt.Sprintf("2.%d.x to 2.%d.x", want.min, want.max)
		}
		return fmt.Errorf("the chroot of Debian %s runs Nix %s.%s.%s, but the matrix expects %s: the suite has moved (or the chroot is stale: rm -rf it and rerun make test-nix-matrix). Check what the new version changes for the hook, then update suiteNix in test/matrix/version_test.go and the Nix tables in README.md and docs/nix-checks.md",
			suite, m[1], m[2], m[3], expect)
	}
	return nil
}

func TestCheckSuiteNix(t *testing.T) {
	for _, c := range []struct {
		suite, version string
		ok             bool
	}{
		{"trixie", "nix (Nix) 2.26.3", true},
		{"trixie", "nix (Nix) 2.26.10", true},
		{"trixie", "nix (Nix) 2.28.3", false},
		{"trixie", "nix (Nix) 2.8.0", false},
		{"sid", "nix (Nix) 2.34.8", true},
		{"sid", "nix (Nix) 2.36.0", true},
		{"sid", "nix (Nix) 2.26.3", false},
		{"sid", "nix (Nix) 2.40.0", false},
		{"sid", "nix (Nix) 3.0.0", false},
		{"sid", "Lix 2.91.1", false},
		{"bookworm", "nix (Nix) 2.8.0", false},
	} {
		err := checkSuiteNix(c.suite, c.version)
		if (err == nil) != c.ok {
			t.Errorf("%s, %q: %v, want ok=%v", c.suite, c.version, err, c.ok)
		}
	}
}

// A command that cannot start has no ProcessState: its result says why
// instead of panicking or reading as a plain failure.
func TestCombinedResultNotStarted(t *testing.T) {
	r := combinedResult(exec.Command("/nonexistent/cachix-filter-hook"))
	if r.Code != -1 || !regexp.MustCompile(`did not run: .*no such file`).MatchString(r.Stderr) {
		t.Errorf("result of a command that cannot start: %+v", r)
	}
	r = combinedResult(exec.Command("sh", "-c", "echo hi; exit 3"))
	if r.Code != 3 || r.Stdout != "hi\n" || r.Stderr != "" {
		t.Errorf("result of sh -c 'echo hi; exit 3': %+v", r)
	}
}
