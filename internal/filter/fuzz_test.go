package filter

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/glob"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// FuzzIndexAgreesWithNaive is TestIndexAgreesWithNaive on the fuzzer's
// patterns and names: patterns are the lines of lists (allow, then deny
// after a line "--"), and the indexed Decide must name the rule that
// trying every pattern in order names.
func FuzzIndexAgreesWithNaive(f *testing.F) {
	for _, seed := range [][2]string{
		{"hello-*\n--\n*-doc", "hello-2.12.1-doc"},
		{"*\n--\n{a,b}-*", "b-1"},
		{"*-proj-*\n/nix/store/*-x\n--\n[!a]?", "ab"},
		{"*\n--\n{[A-\\],b]x,c}", "B"},
		{"*\n--\n{[]-a],x}y", "_y"},
		{"/nix/**\n--\n/nix/store/{x,*-a}", "1-a"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, lists, name string) {
		allowText, denyText, _ := strings.Cut(lists, "\n--\n")
		split := func(s string) []string {
			var out []string
			for _, p := range strings.Split(s, "\n") {
				sep := []rune(nil)
				if strings.HasPrefix(p, "/") {
					sep = []rune{'/'}
				}
				if p == "" || len(p) > 64 {
					continue
				}
				if _, err := glob.Compile(p, sep...); err != nil {
					continue
				}
				out = append(out, p)
			}
			return out
		}
		allow, deny := split(allowText), split(denyText)
		if len(allow)+len(deny) > 16 {
			return
		}
		p, err := storepath.Parse("/nix/store", "/nix/store/"+hashA+"-"+name)
		if err != nil {
			return
		}
		agreesWithNaive(t, mustCompile(t, allow, deny), allow, deny, p)
	})
}

// FuzzLinearAgreesWithGlob is TestLinearAgreesWithGlob on the fuzzer's
// patterns and subjects: where glob.Compile takes a pattern, linear's
// regexp takes it too and matches a subject as the glob does: any
// subject when the pattern holds no U+FFFD, else a valid UTF-8 one.
func FuzzLinearAgreesWithGlob(f *testing.F) {
	for _, seed := range [][2]string{
		{"/**-*-x*", "/nix/store/a-b-x"},
		{"{*-{*-,},}x*", "a-b-x"},
		{"[.-0]*", "/a"},
		{`[!/]{a,\,}?`, "x,b"},
	} {
		f.Add(seed[0], seed[1], true)
		f.Add(seed[0], seed[1], false)
	}
	f.Fuzz(func(t *testing.T, pattern, subject string, sep bool) {
		if len(pattern) > 64 || !utf8.ValidString(subject) && strings.ContainsRune(pattern, utf8.RuneError) {
			return
		}
		var seps []rune
		if sep {
			seps = []rune{'/'}
		}
		g, err := glob.Compile(pattern, seps...)
		if err != nil {
			return
		}
		re, err := linear(pattern, sep)
		if err != nil {
			t.Fatalf("linear(%q, %v): %v", pattern, sep, err)
		}
		if got, want := re.MatchString(subject), g.Match(subject); got != want {
			t.Fatalf("pattern %q (sep %v) on %q: regexp %q says %v, glob %v", pattern, sep, subject, re, got, want)
		}
	})
}
