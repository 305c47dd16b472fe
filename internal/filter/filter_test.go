package filter

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/glob"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

const (
	hashA = "0123456789abcdfghijklmnpqrsvwxyz"
	hashB = "yhq4bppzbyv1vzkmlrk33c4yvl1dqx2r"
)

func sp(name string) storepath.Path {
	return storepath.New("/nix/store", hashA, name)
}

func mustCompile(t testing.TB, allow, deny []string) *Rules {
	t.Helper()
	r, err := Compile(allow, deny)
	if err != nil {
		t.Fatalf("Compile(%q, %q): %v", allow, deny, err)
	}
	return r
}

func TestDecide(t *testing.T) {
	type c struct {
		name   string
		want   string // "push" or "skip"
		reason string
	}
	for _, tc := range []struct {
		why         string
		allow, deny []string
		cases       []c
	}{
		{
			why:   "the acceptance rules",
			allow: []string{"hello-*"}, deny: []string{"*-doc"},
			cases: []c{
				{"hello-2.12.1", "push", `allow "hello-*"`},
				{"hello-2.12.1-doc", "skip", `deny "*-doc"`},
				{"zlib-1.3", "skip", "no allow rule matches"},
				// The name is matched, not the path: "hello" in the
				// hash or elsewhere does not count.
				{"my-hello-2.12.1", "skip", "no allow rule matches"},
			},
		},
		{
			why:   "empty allow selects nothing",
			allow: nil, deny: nil,
			cases: []c{
				{"hello-2.12.1", "skip", "no allow rule matches"},
				{"a", "skip", "no allow rule matches"},
			},
		},
		{
			why:   "empty allow with a deny still reports the deny",
			allow: []string{}, deny: []string{"*-doc"},
			cases: []c{
				{"hello-doc", "skip", `deny "*-doc"`},
				{"hello", "skip", "no allow rule matches"},
			},
		},
		{
			why:   "allow * selects everything",
			allow: []string{"*"},
			cases: []c{
				{"hello-2.12.1", "push", `allow "*"`},
				{"a", "push", `allow "*"`},
				{"source.drv", "push", `allow "*"`},
				{"x=?+_", "push", `allow "*"`},
			},
		},
		{
			why:   "deny wins over any allow, whatever the order",
			allow: []string{"*", "hello-2.12.1-doc"}, deny: []string{"*-doc", "*-man"},
			cases: []c{
				{"hello-2.12.1-doc", "skip", `deny "*-doc"`},
				{"hello-2.12.1-man", "skip", `deny "*-man"`},
				{"hello-2.12.1", "push", `allow "*"`},
			},
		},
		{
			why:   "full-path patterns match the whole path",
			allow: []string{"/nix/store/*-hello-*", "/nix/store/" + hashA[:4] + "*"},
			deny:  []string{"/nix/store/*-*-doc"},
			cases: []c{
				{"hello-2.12.1", "push", `allow "/nix/store/*-hello-*"`},
				{"hello-2.12.1-doc", "skip", `deny "/nix/store/*-*-doc"`},
				// The hash prefix matches every name in hashA.
				{"zlib-1.3", "push", `allow "/nix/store/` + hashA[:4] + `*"`},
			},
		},
		{
			why:   "a full-path * does not cross '/'",
			allow: []string{"/nix/*-hello"},
			cases: []c{{"hello", "skip", "no allow rule matches"}},
		},
		{
			why:   "** crosses '/'",
			allow: []string{"/nix/**-hello"},
			cases: []c{{"hello", "push", `allow "/nix/**-hello"`}},
		},
		{
			why:   "a name pattern does not see the store dir or hash",
			allow: []string{"*store*", hashA[:4] + "*", "*" + hashA[28:] + "-hello"},
			cases: []c{{"hello", "skip", "no allow rule matches"}},
		},
		{
			why:   "a name pattern must match the whole name",
			allow: []string{"hello"},
			cases: []c{
				{"hello", "push", `allow "hello"`},
				{"hello-2.12.1", "skip", "no allow rule matches"},
				{"ahello", "skip", "no allow rule matches"},
			},
		},
		{
			why:   "braces",
			allow: []string{"{hello,zlib}-*", "python3{,.12}-{numpy,scipy}-*"},
			cases: []c{
				{"hello-2.12.1", "push", `allow "{hello,zlib}-*"`},
				{"zlib-1.3", "push", `allow "{hello,zlib}-*"`},
				{"python3-numpy-1.26", "push", `allow "python3{,.12}-{numpy,scipy}-*"`},
				{"python3.12-scipy-1.13", "push", `allow "python3{,.12}-{numpy,scipy}-*"`},
				{"python3.11-scipy-1.13", "skip", "no allow rule matches"},
				{"openssl-3.0", "skip", "no allow rule matches"},
			},
		},
		{
			why:   "character classes and ?",
			allow: []string{"[hz]*", "[!a-m]*-1.0", "hell?"},
			cases: []c{
				{"hello-2.12.1", "push", `allow "[hz]*"`},
				{"zlib-1.3", "push", `allow "[hz]*"`},
				{"openssl-1.0", "push", `allow "[!a-m]*-1.0"`},
				{"glibc-1.0", "skip", "no allow rule matches"},
				{"hellp", "push", `allow "[hz]*"`},
			},
		},
		{
			why:   "? and classes alone",
			allow: []string{"hell?", "[a-c]at"},
			cases: []c{
				{"hellx", "push", `allow "hell?"`},
				{"hell", "skip", "no allow rule matches"},
				{"bat", "push", `allow "[a-c]at"`},
				{"fat", "skip", "no allow rule matches"},
			},
		},
		{
			why:   "escapes",
			allow: []string{`hello-2\.12\.1`, `x\?y`, `\*`},
			cases: []c{
				{"hello-2.12.1", "push", `allow "hello-2\\.12\\.1"`},
				{"x?y", "push", `allow "x\\?y"`},
				{"xay", "skip", "no allow rule matches"},
			},
		},
	} {
		t.Run(tc.why, func(t *testing.T) {
			r := mustCompile(t, tc.allow, tc.deny)
			if r.Empty() != (len(tc.allow) == 0) {
				t.Errorf("Empty() = %v with allow %q", r.Empty(), tc.allow)
			}
			for _, cc := range tc.cases {
				d := r.Decide(sp(cc.name))
				got := "skip"
				if d.Selected {
					got = "push"
				}
				if got != cc.want || d.Reason() != cc.reason {
					t.Errorf("%s: %s (%s), want %s (%s)", cc.name, got, d.Reason(), cc.want, cc.reason)
				}
				if d.Deny != strings.HasPrefix(cc.reason, "deny") {
					t.Errorf("%s: Deny = %v", cc.name, d.Deny)
				}
				if (d.Rule == nil) != (cc.reason == "no allow rule matches") {
					t.Errorf("%s: Rule = %v", cc.name, d.Rule)
				}
				den := r.Denies(sp(cc.name))
				if d.Deny && (den == nil || den != d.Rule) || !d.Deny && den != nil {
					t.Errorf("%s: Denies = %v, Decide = %+v", cc.name, den, d)
				}
			}
		})
	}
}

// where tells which part of the index holds p: "name.prefix",
// "base.suffix", ... (the first place found).
func where(s *set, p *Pattern) string {
	var walk func(t *trie) bool
	walk = func(t *trie) bool {
		for _, q := range t.pats {
			if q == p {
				return true
			}
		}
		for _, n := range t.next {
			if walk(n) {
				return true
			}
		}
		return false
	}
	for _, ix := range []struct {
		name string
		ix   *index
	}{{"name", &s.name}, {"base", &s.base}, {"full", &s.full}} {
		switch {
		case walk(&ix.ix.prefix):
			return ix.name + ".prefix"
		case walk(&ix.ix.suffix):
			return ix.name + ".suffix"
		case walk(&ix.ix.dash):
			return ix.name + ".dash"
		}
		for _, q := range ix.ix.rest {
			if q == p {
				return ix.name + ".rest"
			}
		}
	}
	return "nowhere"
}

func permutations(l []string) [][]string {
	if len(l) <= 1 {
		return [][]string{append([]string(nil), l...)}
	}
	var out [][]string
	for i := range l {
		rest := append(append([]string(nil), l[:i]...), l[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{l[i]}, p...))
		}
	}
	return out
}

// The rule reported is the first matching one in config order, although
// the index keeps patterns in different tries (by literal prefix, by
// literal suffix, neither) and in separate indexes for name and full-path
// patterns.
func TestFirstRuleInConfigOrder(t *testing.T) {
	patterns := map[string]string{
		"hello-*":                     "name.prefix",
		"*-2.12.1":                    "name.suffix",
		"*-2.*":                       "name.dash",
		"*":                           "name.rest",
		"{hello,zlib}-*":              "name.prefix", // once per alternative
		"{hello,zlib}-2.12.1":         "name.prefix",
		"/nix/store/*-hello-2.12.1":   "base.suffix",
		"/nix/store/*-hello-*":        "base.dash",
		"/nix/sto?e/*-hello-2.12.1":   "full.prefix",
		"[h]ello-2.12.?":              "name.rest",
		"hello-2.12.1":                "name.prefix",
		"/nix/store/" + hashA + "-h*": "base.prefix",
	}
	var all []string
	for p := range patterns {
		all = append(all, p)
	}
	// Check where each pattern is indexed, so this test keeps covering
	// every trie if the index changes.
	r := mustCompile(t, all, all)
	for _, list := range []*set{&r.allow, &r.deny} {
		for _, p := range list.all() {
			if got := where(list, p); got != patterns[p.Text] {
				t.Errorf("%q indexed in %s, want %s", p.Text, got, patterns[p.Text])
			}
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		l := append([]string(nil), all...)
		rng.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
		l = l[:1+rng.IntN(len(l))]
		for _, asDeny := range []bool{false, true} {
			var r *Rules
			if asDeny {
				r = mustCompile(t, []string{"*"}, l)
			} else {
				r = mustCompile(t, l, nil)
			}
			d := r.Decide(sp("hello-2.12.1"))
			if d.Rule == nil || d.Rule.Text != l[0] || d.Rule.index != 0 || d.Deny != asDeny {
				t.Fatalf("rules %q (deny %v): decided by %+v, want %q", l, asDeny, d.Rule, l[0])
			}
		}
	}
	for _, l := range permutations([]string{"hello-*", "*-2.12.1", "*"}) {
		d := mustCompile(t, l, nil).Decide(sp("hello-2.12.1"))
		if d.Rule.Text != l[0] {
			t.Errorf("allow %q: decided by %q, want %q", l, d.Rule.Text, l[0])
		}
	}
	// Later rules that match only some names are still found when the
	// earlier ones do not match.
	r = mustCompile(t, []string{"zlib-*", "*-doc", "/nix/store/*-openssl-*", "[g]libc-*"}, nil)
	for name, want := range map[string]string{
		"zlib-1.3": "zlib-*", "hello-doc": "*-doc", "zlib-doc": "zlib-*",
		"openssl-3.0": "/nix/store/*-openssl-*", "openssl-doc": "*-doc", "glibc-2.39": "[g]libc-*",
	} {
		if d := r.Decide(sp(name)); d.Rule == nil || d.Rule.Text != want {
			t.Errorf("%s: decided by %v, want %q", name, d.Rule, want)
		}
	}
}

// all lists the patterns of s in no particular order.
func (s *set) all() []*Pattern {
	var out []*Pattern
	seen := map[*Pattern]bool{}
	add := func(ps []*Pattern) {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	var walk func(t *trie)
	walk = func(t *trie) {
		add(t.pats)
		for _, n := range t.next {
			walk(n)
		}
	}
	for _, ix := range []*index{&s.name, &s.base, &s.full} {
		walk(&ix.prefix)
		walk(&ix.suffix)
		walk(&ix.dash)
		add(ix.rest)
	}
	return out
}

func TestPatternErrors(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		offset  int
	}{
		{"{hello,world", 12},
		{"[abc", 4},
		{"a[z-a]", 6},
		{`hello\`, 6},
		{"[]", 2},
	} {
		for _, list := range []string{"allow", "deny"} {
			allow, deny := []string{"ok-*", tc.pattern}, []string{"*-doc", tc.pattern}
			if list == "allow" {
				deny = nil
			} else {
				allow = []string{"*"}
			}
			_, err := Compile(allow, deny)
			var pe *PatternError
			if !errors.As(err, &pe) {
				t.Fatalf("%s %q: error %v is not a *PatternError", list, tc.pattern, err)
			}
			if pe.List != list || pe.Index != 1 || pe.Pattern != tc.pattern || pe.Offset != tc.offset || pe.Reason == "" {
				t.Errorf("%s %q: %+v, want offset %d at index 1", list, tc.pattern, pe, tc.offset)
			}
			msg := err.Error()
			for _, part := range []string{fmt.Sprintf("%s[1]", list), fmt.Sprintf("%q", tc.pattern), fmt.Sprintf("offset %d", tc.offset)} {
				if !strings.Contains(msg, part) {
					t.Errorf("error %q does not contain %s", msg, part)
				}
			}
		}
	}

	// Every bad pattern is reported, not just the first.
	_, err := Compile([]string{"[abc", "fine", "{hello,world"}, []string{"a[z-a]"})
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *PatternError
		if !errors.As(e, &pe) {
			t.Fatalf("%v is not a *PatternError", e)
		}
		got = append(got, fmt.Sprintf("%s[%d]@%d", pe.List, pe.Index, pe.Offset))
	}
	if want := "allow[0]@4 allow[2]@12 deny[0]@6"; strings.Join(got, " ") != want {
		t.Errorf("errors %s, want %s", strings.Join(got, " "), want)
	}
}

func TestLiteralPrefixSuffix(t *testing.T) {
	for _, tc := range []struct{ pattern, prefix, suffix string }{
		{"hello-*", "hello-", ""},
		{"*-doc", "", "-doc"},
		{"hello", "hello", "hello"},
		{"*", "", ""},
		{"a*b", "a", "b"},
		{"{a,b}-x", "", "-x"},
		{"a{b,c}", "a", ""},
		{`a\*b`, "a", "b"},
		{"[ab]c", "", "c"},
		{"a?", "a", ""},
		{"a}b,c", "a", "c"},
		{"", "", ""},
	} {
		if got := literalPrefix(tc.pattern); got != tc.prefix {
			t.Errorf("literalPrefix(%q) = %q, want %q", tc.pattern, got, tc.prefix)
		}
		if got := literalSuffix(tc.pattern); got != tc.suffix {
			t.Errorf("literalSuffix(%q) = %q, want %q", tc.pattern, got, tc.suffix)
		}
	}
}

// naiveDecide is the definition the index must agree with: compile every
// pattern, try them in config order.
func naiveDecide(t testing.TB, allow, deny []string, p storepath.Path) (selected, isDeny bool, index int) {
	first := func(list []string) int {
		for i, text := range list {
			var g *glob.Pattern
			var err error
			subject := p.Name
			if strings.HasPrefix(text, "/") {
				g, err = glob.Compile(text, '/')
				subject = p.String()
			} else {
				g, err = glob.Compile(text)
			}
			if err != nil {
				t.Fatalf("naive: %q: %v", text, err)
			}
			if g.Match(subject) {
				return i
			}
		}
		return -1
	}
	if i := first(deny); i >= 0 {
		return false, true, i
	}
	if i := first(allow); i >= 0 {
		return true, false, i
	}
	return false, false, -1
}

var (
	nameTokens = []string{
		"a", "b", "c", "-", "1", ".", "ab", "a-", "-1",
		"*", "*", "*", "?", "[ab]", "[!a]", "[a-c]", "[-.]", "{a,b}", "{a*,-b}", "{,c}",
		`\-`, `\a`, `\*`, "}", ",", "]",
		// Ranges whose ends a lexer that escapes or closes there
		// would misread: '.' to '\' holds "1" and ".", ']' to 'a'
		// holds "_" and "a".
		`{[.-\],b]1,c}`, "{[]-a],b}", `[.-\]`, "[]-a]",
	}
	fullPrefixes = []string{"/nix/store/", "/nix/store/*-", "/nix/*/", "/**", "/nix/store/" + hashA[:3], "/nix/store/y", "/nix/st"}
	nameChars    = "abc-1._"
)

func randomPattern(rng *rand.Rand) string {
	var b strings.Builder
	if rng.IntN(4) == 0 {
		b.WriteString(fullPrefixes[rng.IntN(len(fullPrefixes))])
	}
	for n := rng.IntN(5); n >= 0; n-- {
		b.WriteString(nameTokens[rng.IntN(len(nameTokens))])
	}
	return b.String()
}

func randomPatterns(rng *rand.Rand, n int) []string {
	var out []string
	for len(out) < n {
		p := randomPattern(rng)
		sep := []rune(nil)
		if strings.HasPrefix(p, "/") {
			sep = []rune{'/'}
		}
		if _, err := glob.Compile(p, sep...); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func randomPath(rng *rand.Rand) storepath.Path {
	n := 1 + rng.IntN(6)
	b := make([]byte, n)
	for i := range b {
		b[i] = nameChars[rng.IntN(len(nameChars))]
	}
	if b[0] == '.' {
		b[0] = 'a'
	}
	hash := hashA
	if rng.IntN(2) == 0 {
		hash = hashB
	}
	return storepath.New("/nix/store", hash, string(b))
}

// TestIndexAgreesWithNaive guards the trie index: on random rule sets and
// names, the indexed Decide gives the same verdict and the same rule as
// trying every pattern in order.
// agreesWithNaive decides p with r, the rules compiled from allow and
// deny, fails the test unless a linear first-match scan decides the same,
// and returns the decision.
func agreesWithNaive(t testing.TB, r *Rules, allow, deny []string, p storepath.Path) Decision {
	t.Helper()
	d := r.Decide(p)
	sel, den, idx := naiveDecide(t, allow, deny, p)
	got := -1
	if d.Rule != nil {
		got = d.Rule.index
	}
	if d.Selected != sel || d.Deny != den || got != idx {
		t.Fatalf("allow %q deny %q on %s: indexed %+v (rule %d), naive selected=%v deny=%v rule %d",
			allow, deny, p, d, got, sel, den, idx)
	}
	return d
}

func TestIndexAgreesWithNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	decisions, selected, denied := 0, 0, 0
	for round := 0; round < rounds; round++ {
		allow := randomPatterns(rng, rng.IntN(12))
		deny := randomPatterns(rng, rng.IntN(4))
		r := mustCompile(t, allow, deny)
		for i := 0; i < 40; i++ {
			p := randomPath(rng)
			d := agreesWithNaive(t, r, allow, deny, p)
			if d.Rule != nil {
				list := allow
				if d.Deny {
					list = deny
				}
				if d.Rule.Text != list[d.Rule.index] {
					t.Fatalf("rule text %q, want %q", d.Rule.Text, list[d.Rule.index])
				}
			}
			decisions++
			if d.Selected {
				selected++
			}
			if d.Deny {
				denied++
			}
		}
	}
	// Make sure the generator exercises every outcome.
	if selected < decisions/20 || denied < decisions/20 || decisions-selected-denied < decisions/20 {
		t.Errorf("poor coverage: %d decisions, %d selected, %d denied", decisions, selected, denied)
	}
	t.Logf("%d decisions: %d selected, %d denied", decisions, selected, denied)
}

// Realistic names and rule sets for the benchmark.
var (
	benchPackages = []string{
		"hello", "zlib", "openssl", "glibc", "gcc", "python3.12-numpy", "python3.12-requests",
		"rustc", "cargo", "nodejs", "linux", "systemd", "bash", "coreutils", "perl5.38.2-Test-Simple",
		"openc910-sim", "openc910-rtl", "verilator", "yosys", "firefox", "source", "nixos-system-host",
	}
	benchOutputs = []string{"", "", "", "-dev", "-doc", "-man", "-lib", "-bin", ".drv", "-info"}
)

func benchNames(n int) []storepath.Path {
	rng := rand.New(rand.NewPCG(5, 6))
	out := make([]storepath.Path, n)
	hashes := []string{hashA, hashB}
	for i := range out {
		name := benchPackages[rng.IntN(len(benchPackages))]
		if name != "source" && !strings.HasPrefix(name, "nixos-system") {
			name += fmt.Sprintf("-%d.%d.%d", rng.IntN(5), rng.IntN(40), rng.IntN(10))
		}
		name += benchOutputs[rng.IntN(len(benchOutputs))]
		out[i] = storepath.New("/nix/store", hashes[i%2], name)
	}
	return out
}

// benchRules makes n allow rules, mostly project prefixes as a monorepo or
// an organisation would list them, and n/10 deny rules.
func benchRules(n int) (allow, deny []string) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < n; i++ {
		pkg := benchPackages[i%len(benchPackages)]
		switch rng.IntN(10) {
		case 0:
			allow = append(allow, fmt.Sprintf("*-%s-%d", pkg, i))
		case 1:
			allow = append(allow, fmt.Sprintf("{%s,proj%d}-[0-9]*", pkg, i))
		case 2:
			allow = append(allow, fmt.Sprintf("/nix/store/*-proj%d-*", i))
		default:
			allow = append(allow, fmt.Sprintf("proj%d-%s-*", i, pkg))
		}
	}
	// Some of the rules match the names.
	allow = append(allow, "hello-*", "openc910-*", "python3.12-*")
	deny = []string{"*-doc", "*-man", "*.drv", "*-info"}
	for i := 0; i < n/10; i++ {
		deny = append(deny, fmt.Sprintf("secret%d-*", i))
	}
	return allow, deny
}

// BenchmarkDecide measures decisions per second for 10, 100 and 1000 allow
// rules (plus n/10 deny rules):
//
//	go test -run NONE -bench Decide ./filter
func BenchmarkDecide(b *testing.B) {
	names := benchNames(1024)
	for _, n := range []int{10, 100, 1000} {
		allow, deny := benchRules(n)
		r := mustCompile(b, allow, deny)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Decide(names[i&1023])
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkDecideNaive is the loop the index replaces, for comparison.
func BenchmarkDecideNaive(b *testing.B) {
	names := benchNames(1024)
	for _, n := range []int{10, 100, 1000} {
		allow, deny := benchRules(n)
		compile := func(list []string) (gs []*glob.Pattern, full []bool) {
			for _, text := range list {
				f := strings.HasPrefix(text, "/")
				var g *glob.Pattern
				if f {
					g = glob.MustCompile(text, '/')
				} else {
					g = glob.MustCompile(text)
				}
				gs, full = append(gs, g), append(full, f)
			}
			return gs, full
		}
		ag, af := compile(allow)
		dg, df := compile(deny)
		first := func(gs []*glob.Pattern, full []bool, p storepath.Path) int {
			name, path := p.Name, p.String()
			for i, g := range gs {
				s := name
				if full[i] {
					s = path
				}
				if g.Match(s) {
					return i
				}
			}
			return -1
		}
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				p := names[i&1023]
				if first(dg, df, p) < 0 {
					first(ag, af, p)
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// The index's brace expansion lists a pattern's alternatives as the glob
// syntax has them, up to a bound.
func TestExpandBraces(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    []string // nil: more than the limit, or unbalanced
	}{
		{"hello-*", []string{"hello-*"}},
		{"{a,b}-{x,y}", []string{"a-x", "a-y", "b-x", "b-y"}},
		{"{a{b,c},d}e", []string{"abe", "ace", "de"}},
		{"x{,y}", []string{"x", "xy"}},
		{`\{a,b}`, []string{`\{a,b}`}},
		{"[{]{a,b}", []string{"[{]a", "[{]b"}},
		{"a}b,c", []string{"a}b,c"}},
		{"{a}", []string{"a"}},
		// A range's two ends are taken as they are, as the glob lexer
		// reads them: a backslash or a ']' there neither escapes nor
		// closes the class.
		{`{[A-\],b]x,c}`, []string{`[A-\]`, "b]x", "c"}},
		{"{[]-a],x}y", []string{"[]-a]y", "xy"}},
		{"{[!a-]],b}", []string{"[!a-]]", "b"}},
		{"{[\\-x],y}", []string{"[\\-x]", "y"}},
		{"{a,b", nil},
		{strings.Repeat("{a,b}", 7), nil}, // 128 > 64
	} {
		got, ok := expandBraces(tc.pattern, maxAlternatives)
		if ok != (tc.want != nil) || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("expandBraces(%q) = %q, %v; want %q", tc.pattern, got, ok, tc.want)
		}
	}
	if got, ok := expandBraces(strings.Repeat("{a,b}", 6), maxAlternatives); !ok || len(got) != 64 || got[0] != "aaaaaa" || got[63] != "bbbbbb" {
		t.Errorf("expandBraces of 6 groups of 2 = %d alternatives (%v), want 64", len(got), ok)
	}
}

// Brace expansion takes time linear in the pattern's length. Compile
// refuses a pattern over MaxPattern, but expandBraces must not be what
// holds that bound: rewriting the whole pattern once per group took 16 s
// for 40,000 groups (200 KB). That time went to copying: the bound is
// on the bytes allocated, which a rewrite of the whole pattern exceeds
// at once, however fast or loaded the machine.
func TestExpandBracesLongPattern(t *testing.T) {
	for name, pattern := range map[string]string{
		"brace groups":  strings.Repeat("{a,b}", 40_000),
		"nested braces": strings.Repeat("{", 40_000) + "a" + strings.Repeat("}", 40_000),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		expandBraces(pattern, maxAlternatives)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(pattern)) {
			t.Errorf("%s: expanding a %d-byte pattern allocated %d bytes", name, len(pattern), alloc)
		}
	}
}

// A whole-path pattern "<store>/..." with several stars decides in time
// a path's name cannot stretch: any local user chooses the names the
// hook and the worker decide on. The matcher keeps every star's restart
// point when '/' is a separator: "/nix/store/*-*-*-*-*-x*" took 3 s on a
// name of 100 "a-", a star more 33 s.
//
// The patterns below have eight stars: a matcher that kept the restart
// points would take hours on them, and the test's -timeout would fail
// it; one that drops them takes microseconds, however loaded the
// machine. The separators are checked first, so that undoing the fix
// fails at once rather than at the timeout.
func TestWholePathPatternOnHostileName(t *testing.T) {
	splitOnHostileName(t, map[string]string{
		"/nix/store/*-*-*-*-*-*-*-*-x*": "a-a-a-a-a-a-a-x",
		"/nix/store/*a*a*a*a*a*a*a*b*":  "aaaaaaab",
	})
}

// The same for a whole-path pattern that does not start with the store
// directory: "/nix/*/*-*-*-*-*-x*" took 3.3 s on a name of 100 "a-",
// "/nix/*/*-*-*-*-x*" 0.27 s, each star about ten times more. Its last
// part is matched without separators, as the part after "<store>/" is;
// a '/' that a class or "**" after it could match is not split at.
func TestOtherWholePathPatternOnHostileName(t *testing.T) {
	splitOnHostileName(t, map[string]string{
		"/nix/*/*-*-*-*-*-*-*-*-x*":     "a-a-a-a-a-a-a-x",
		"/nix/store*/*a*a*a*a*a*a*a*b*": "aaaaaaab",
		"/**/*-*-*-*-*-*-*-*-x":         "a-a-a-a-a-a-a-x",
	})
	// A '/' that the last part could match as well: not split there.
	for pattern, name := range map[string]string{
		"/nix/sto[!x]e[!x]*-x": "a-x",
		"/nix/store{/*-x,}":    "a-x",
		"/nix/**-x":            "a-x",
		"/nix/*\\/*-x":         "a-x",
	} {
		r := mustCompile(t, []string{"*"}, []string{pattern})
		agreesWithNaive(t, r, []string{"*"}, []string{pattern}, sp(name))
	}
}

// A pattern longer than MaxPattern is refused with a short message that
// names it, not compiled: 1 MiB of "{a,b}" took 0.7 s and 67 MiB to
// compile, at every hook run.
func TestCompileRefusesLongPattern(t *testing.T) {
	long := strings.Repeat("{a,b}", MaxPattern/5+1)
	_, err := Compile([]string{"hello-*"}, []string{"*-doc", long})
	if err == nil {
		t.Fatalf("Compile of a %d-byte pattern succeeded", len(long))
	}
	msg := err.Error()
	if !strings.Contains(msg, "deny[1]") || !strings.Contains(msg, fmt.Sprintf("more than %d", MaxPattern)) || len(msg) > 300 {
		t.Errorf("error = %q, want a short one naming deny[1] and the limit", msg)
	}
	if _, err := Compile([]string{strings.Repeat("{a,b}", MaxPattern/5)}, nil); err != nil {
		t.Errorf("a pattern of %d bytes, within the limit: %v", MaxPattern/5*5, err)
	}
}

// A hosts pattern is bounded as an allow or deny pattern is: 1 MiB of
// "{a,b}" in hosts took 0.9 s to load, at every hook run, where the same
// in deny is refused.
func TestCompileHostsRefusesLongPattern(t *testing.T) {
	long := strings.Repeat("{a,b}", MaxPattern/5+1)
	_, err := CompileHosts([]string{"builder-*", long})
	if err == nil {
		t.Fatalf("CompileHosts of a %d-byte pattern succeeded", len(long))
	}
	var pe *PatternError
	if !errors.As(err, &pe) || pe.List != "hosts" || pe.Index != 1 || !strings.Contains(pe.Reason, fmt.Sprintf("more than %d", MaxPattern)) || len(err.Error()) > 300 {
		t.Errorf("error = %q, want a short one naming hosts[1] and the limit", err)
	}
	if _, err := CompileHosts([]string{strings.Repeat("{a,b}", MaxPattern/5)}); err != nil {
		t.Errorf("a pattern of %d bytes, within the limit: %v", MaxPattern/5*5, err)
	}
}

// A whole-path pattern whose last part has a class or a group of its own
// was not split (see splitLast), and kept every star's restart point:
// "/nix/*/*-*-*-*-[x]*" took 3.2 s on a name of 100 "a-", "{x,y}" in
// place of "[x]" 20 s, a star more 46 s, at every hook run. Split where
// the class or group cannot match a '/', it decides as the plain matcher
// does, which random patterns with a '/' in classes, groups and escapes,
// before the last '/' and after, check.
func TestWholePathPatternWithClassOnHostileName(t *testing.T) {
	splitOnHostileName(t, map[string]string{
		"/nix/*/*-*-*-*-*-*-*-[x]*":          "a-a-a-a-a-a-a-x",
		"/nix/*/*-*-*-*-*-*-*-[w-z]*":        "a-a-a-a-a-a-a-x",
		"/nix/*/*-*-*-*-*-*-*-{x,y}*":        "a-a-a-a-a-a-a-y",
		"/nix/{st,x}*/*-*-*-*-*-*-*-[x]{,y}": "a-a-a-a-a-a-a-x",
	})
	tokens := []string{"nix", "store", "/", "/", "*", "*", "**", "?", "-", "a", "1", ".", hashA[:2],
		"[a-c]", "[!a]", "[.-1]", "[-.]", "[/]", "[!/]", "[a/]", "{a,/}", "{/,b}", "{nix,x}", "{,a}", `\/`, `\*`, "[]-a]"}
	rng := rand.New(rand.NewPCG(5, 6))
	denied := 0
	for range 3000 {
		var b strings.Builder
		b.WriteString("/")
		for n := rng.IntN(8); n >= 0; n-- {
			b.WriteString(tokens[rng.IntN(len(tokens))])
		}
		deny := []string{b.String()}
		if _, err := glob.Compile(deny[0], '/'); err != nil {
			continue
		}
		r := mustCompile(t, []string{"*"}, deny)
		for range 10 {
			if d := agreesWithNaive(t, r, []string{"*"}, deny, randomPath(rng)); d.Deny {
				denied++
			}
		}
	}
	if denied == 0 {
		t.Error("no random pattern denied a path: the comparison compared nothing")
	}
}

// splitOnHostileName checks that each deny pattern denies its matching
// name, is matched without separators (its stars keep no restart point
// per '/'), and leaves a name of 100 "a-" selected, in the time a split
// pattern takes (unsplit, they ran for seconds to hours).
func splitOnHostileName(t *testing.T, denies map[string]string) {
	t.Helper()
	name := strings.Repeat("a-", 100) + "a"
	for pattern, matching := range denies {
		r := mustCompile(t, []string{"*"}, []string{pattern})
		d := r.Decide(sp(matching))
		if !d.Deny || d.Rule.Text != pattern {
			t.Fatalf("deny %q on %s: %s", pattern, matching, d.Reason())
		}
		if seps := d.Rule.g.Separators(); len(seps) > 0 {
			t.Fatalf("deny %q is matched with separators %q: its stars keep every restart point", pattern, seps)
		}
		if d := r.Decide(sp(name)); !d.Selected {
			t.Errorf("deny %q denies %s", pattern, name)
		}
	}
}

// A pattern on which gobwas/glob backtracks for long is matched by a
// regexp instead (linear.go): a whole-path pattern that is not split
// ("**" or a class over '/' in its last part: "/**-*-*-*-x*" took 90 ms
// on a name of 105 "a-", two stars more seconds), and groups with stars
// even without separators ("{*-{*-,},}{*-,}{*-,}x*" took 1.8 s). The
// patterns below would run for hours as globs: each is checked to be
// matched by a regexp that compiled (a nil one leaves the match to the
// glob) before the hostile name is decided, so that undoing the fix
// fails at once rather than hangs. A regexp's time is linear by construction;
// BenchmarkBacktrackingPatternOnHostileName measures it against a plain
// pattern's (a clock here failed by chance on a loaded machine).
func TestBacktrackingPatternOnHostileName(t *testing.T) {
	name := strings.Repeat("a-", 105) + "a"
	for pattern, matching := range hostilePatterns {
		r := mustCompile(t, []string{"*"}, []string{pattern})
		d := agreesWithNaive(t, r, []string{"*"}, []string{pattern}, sp(matching))
		if !d.Deny {
			t.Fatalf("deny %q on %s: %s", pattern, matching, d.Reason())
		}
		if d.Rule.re == nil || d.Rule.re() == nil {
			t.Fatalf("deny %q is matched by the glob matcher, which backtracks on a hostile name", pattern)
		}
		if d = r.Decide(sp(name)); !d.Selected {
			t.Errorf("deny %q denies %s", pattern, name)
		}
	}
}

// A whole-path pattern not split at its last '/' was matched by the
// glob on any path under a store directory that is not UTF-8, where the
// regexp could have differed: it backtracked on a hostile name as it
// does under /nix/store (seconds to minutes). The regexp differs only on
// a U+FFFD in the pattern, and is used. Bounded by a count: each match
// asks the regexp once, and a regexp match does not backtrack; the first
// match, on a short name, is checked before the hostile one is tried.
func TestBacktrackingPatternUnderNonUTF8StoreDir(t *testing.T) {
	const dir = "/nix/st\xffre"
	t.Setenv("NIX_STORE_DIR", dir)
	hostile := storepath.New(dir, hashA, strings.Repeat("a-", 105)+"a")
	tried := 0
	for pattern, matching := range hostilePatterns {
		if pattern[0] != '/' {
			continue
		}
		r := mustCompile(t, []string{"*"}, []string{pattern})
		p := r.deny.all()[0]
		if p.dir != nil {
			continue // its last part is matched on the name, which is ASCII
		}
		tried++
		n := countMatches(p)
		if d := r.Decide(storepath.New(dir, hashA, matching)); !d.Deny || *n != 1 {
			t.Fatalf("deny %q on %s under %q: %s, regexp asked %d times, want once: the glob matched, which backtracks on a hostile name", pattern, matching, dir, d.Reason(), *n)
		}
		if d := r.Decide(hostile); !d.Selected || *n != 2 {
			t.Errorf("deny %q on a hostile name: %s, regexp asked %d times in all, want twice", pattern, d.Reason(), *n)
		}
	}
	if tried < 3 {
		t.Fatalf("only %d of hostilePatterns are unsplit whole-path patterns", tried)
	}
	// A U+FFFD in the pattern: the glob, which alone does not take a
	// bad byte for it.
	r := mustCompile(t, []string{"*"}, []string{"/nix/st\ufffdre/**-x"})
	if d := r.Decide(storepath.New(dir, hashA, "a-x")); d.Deny {
		t.Errorf("a pattern's U+FFFD matched the store directory's bad byte: %s", d.Reason())
	}
}

// hostilePatterns are TestBacktrackingPatternOnHostileName's, each with
// a name it matches.
var hostilePatterns = map[string]string{
	"/**-*-*-*-*-*-*-*-x*":                   "a-a-a-a-a-a-a-x",
	"/nix/**-*-*-*-*-*-*-*-x*":               "a-a-a-a-a-a-a-x",
	"/nix/*/[.-0]*-*-*-*-*-*-*-*-x*":         "a-a-a-a-a-a-a-x",
	"/nix/*/[!x]*-*-*-*-*-*-*-*-x*":          "a-a-a-a-a-a-a-x",
	"/nix/*/{*-,}{*-,}{*-,}{*-,}{*-,}*-x*":   "a-a-a-a-a-a-x",
	"{*-{*-,},}{*-,}{*-,}{*-,}{*-,}{*-,}x*":  "a-a-a-a-a-a-x",
	"*{-,}*{-,}*{-,}*{-,}*??{a,b}{a,b}{-,}q": "a-a-a-a-abq",
	"{a,a-}{a,a-}{a,a-}{a,a-}{a,a-}{a,a-}x":  "a-aa-aa-ax",
}

// countMatches counts p's matches from now on. matchLast asks p.re once
// per match of a UTF-8 subject, and a p.re that gives nil leaves the
// match to the glob: wrapped, it counts either engine's matches without
// changing which one matches.
func countMatches(p *Pattern) *int {
	n, re := new(int), p.re
	p.re = func() *regexp.Regexp {
		*n++
		if re == nil {
			return nil
		}
		return re()
	}
	return n
}

// BenchmarkBacktrackingPatternOnHostileName decides a name of 105 "a-"
// against each of hostilePatterns, beside its floor: the same decision
// with a plain deny "*-x*". A regexp over a 40-byte pattern took a few
// hundred times the floor; as globs, millions.
func BenchmarkBacktrackingPatternOnHostileName(b *testing.B) {
	name := sp(strings.Repeat("a-", 105) + "a")
	patterns := []string{"*-x*"}
	for p := range hostilePatterns {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns[1:])
	for i, pattern := range patterns {
		r := mustCompile(b, []string{"*"}, []string{pattern})
		label := fmt.Sprintf("deny=%d", i)
		if i == 0 {
			label = "floor"
		}
		b.Run(label, func(b *testing.B) {
			b.Logf("deny %q", pattern)
			for b.Loop() {
				r.Decide(name)
			}
		})
	}
}

// linear's regexp matches what the glob matches, on random patterns
// with every token of the syntax (classes over '/', "**", nested groups,
// escapes) and on names and paths, with '/' as separator and without.
func TestLinearAgreesWithGlob(t *testing.T) {
	tokens := []string{"a", "b", "-", ".", "/", "/", "*", "*", "**", "?", "[a-c]", "[!a]", "[.-0]", "[!/]", "[/]", "[-.]",
		"{", "{", ",", "}", "}", `\*`, `\/`, `\{`, "]", "[]-a]", `[.-\]`, "é", "[é-ü]", "\n", "[\u00ff-\U0010ffff]", "\ufffd"}
	// Subjects not UTF-8 too: a whole path under such a store directory.
	subjects := []string{"", "a", "-", "/", "a-b", "a/b", "ab-c.d", "/nix/store/" + hashA + "-a-b", "é", "a\nb", "/a/-b/.c", "aa-bb-cc",
		"\xff", "a\xffb", "/n\xffx/store/" + hashA + "-a-b", "\xc3-\xa9"}
	rng := rand.New(rand.NewPCG(9, 10))
	matched, compared := 0, 0
	for range 20000 {
		var b strings.Builder
		for n := rng.IntN(8); n >= 0; n-- {
			b.WriteString(tokens[rng.IntN(len(tokens))])
		}
		pattern := b.String()
		for _, sep := range []bool{false, true} {
			var seps []rune
			if sep {
				seps = []rune{'/'}
			}
			g, err := glob.Compile(pattern, seps...)
			if err != nil {
				continue
			}
			re, err := linear(pattern, sep)
			if err != nil {
				t.Fatalf("linear(%q, %v): %v", pattern, sep, err)
			}
			for range 4 {
				s := subjects[rng.IntN(len(subjects))]
				if rng.IntN(2) == 0 {
					// A subject the pattern may match: its own
					// text, a star or two made letters.
					s = strings.NewReplacer(`\`, "", "**", "a/", "*", "b", "?", "c", "{", "", "}", "", ",", "").Replace(pattern)
				}
				if !utf8.ValidString(s) && strings.ContainsRune(pattern, utf8.RuneError) {
					continue // the one case they differ on (see linear)
				}
				want := g.Match(s)
				if got := re.MatchString(s); got != want {
					t.Fatalf("pattern %q (sep %v) on %q: regexp %q says %v, glob %v", pattern, sep, s, re, got, want)
				}
				compared++
				if want {
					matched++
				}
			}
		}
	}
	if matched < compared/20 {
		t.Errorf("only %d of %d comparisons matched: the comparison hardly compared matches", matched, compared)
	}
}

// BenchmarkCompile measures compiling 10, 100 and 1000 allow rules (plus
// n/10 deny rules), as the hook does at every run.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		allow, deny := benchRules(n)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				mustCompile(b, allow, deny)
			}
		})
	}
}

// The worst shapes at the longest pattern (MaxPattern) and the longest
// name are matched by a regexp that compiles, and decide: as globs each
// would run for hours. A regexp is linear in pattern and name by
// construction; BenchmarkLongBacktrackingPattern measures compiling and
// deciding (the worst, groups nested 800 deep, compiled in 0.3 s and
// decided in 40 ms; a clock here failed by chance on a loaded machine).
func TestLongBacktrackingPatternOnHostileName(t *testing.T) {
	name := strings.Repeat("a-", 105) + "a"
	for _, pattern := range longHostilePatterns() {
		r := mustCompile(t, []string{"*"}, []string{pattern})
		// Checked before deciding: a glob, or a nil regexp that
		// leaves the match to it, would hang rather than fail.
		if ps := r.deny.all(); len(ps) != 1 || ps[0].re == nil || ps[0].re() == nil {
			t.Fatalf("deny %q… is matched by the glob matcher, which backtracks on a hostile name", pattern[:24])
		}
		if d := r.Decide(sp(name)); !d.Selected {
			t.Errorf("deny %q… denies %s", pattern[:24], name)
		}
	}
}

// longHostilePatterns are the worst shapes filled to MaxPattern.
func longHostilePatterns() []string {
	fill := func(unit, head, tail string) string {
		n := (MaxPattern - len(head) - len(tail)) / len(unit)
		return head + strings.Repeat(unit, n) + tail
	}
	fillNested := func(open, mid, close string) string {
		n := (MaxPattern - len(mid)) / (len(open) + len(close))
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	return []string{
		fill("{*-,}", "", "x*"),
		fill("*-", "/**-", "x*"),
		fill("{a,a-}", "", "x"),
		fill("*{-,}", "", "q"),
		fillNested("{*-,", "x", "}"),
		fillNested("{a-,{a,", "x", "}}"),
	}
}

// BenchmarkLongBacktrackingPattern compiles each of longHostilePatterns
// with its regexp and decides a name of 105 "a-" with it, beside the
// floor of a plain pattern as long ("*-" then "a"s) doing the same.
func BenchmarkLongBacktrackingPattern(b *testing.B) {
	name := sp(strings.Repeat("a-", 105) + "a")
	floor := "*-" + strings.Repeat("a", MaxPattern-2)
	for i, pattern := range append([]string{floor}, longHostilePatterns()...) {
		label := fmt.Sprintf("deny=%d", i)
		if i == 0 {
			label = "floor"
		}
		b.Run(label+"/compile", func(b *testing.B) {
			for b.Loop() {
				r := mustCompile(b, []string{"*"}, []string{pattern})
				if re := r.deny.all()[0].re; re != nil {
					re()
				}
			}
		})
		r := mustCompile(b, []string{"*"}, []string{pattern})
		b.Run(label+"/decide", func(b *testing.B) {
			for b.Loop() {
				r.Decide(name)
			}
		})
	}
}

// A pattern is matched at most once per subject, however many places of
// the index the subject passes it at: one per alternative, and the dash
// trie's at every '-' of the name. It was tried at each, so a name of
// 105 "a-" tried "{*-,}a{*-,}{a-,-}…" (filed under "a" by four
// alternatives) at each '-', 0.35 s where one match took 22 µs. Its
// matches are counted (a clock here failed by chance on a loaded
// machine); BenchmarkIndexMatchesPatternOnce times them.
func TestIndexMatchesPatternOnce(t *testing.T) {
	name := sp(strings.Repeat("a-", 105) + "a")
	for _, pattern := range matchedOncePatterns {
		r := mustCompile(t, []string{"*"}, []string{pattern})
		matches := countMatches(r.deny.all()[0])
		if d := r.Decide(name); !d.Selected {
			t.Fatalf("deny %q denies %s", pattern, name.Name)
		}
		if *matches != 1 {
			t.Errorf("deny %q: matched %d times in one decision, want once", pattern, *matches)
		}
	}
}

// matchedOncePatterns are each filed where a name of 105 "a-" passes
// more than once: with a literal suffix ("…-x") they were filed under it
// and never reached, and the test's clock saw nothing.
var matchedOncePatterns = []string{
	"{*-,}a{*-,}{a-,-}***{a,b}*[!x]{*-,},[!x]",
	"*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-a*-x*",
	"{*-,*--,*---}a[-]a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-{a,b}x*",
}

// BenchmarkIndexMatchesPatternOnce decides a name of 105 "a-" against
// each of matchedOncePatterns, beside its floor: one match of the
// pattern on the name. Matched at each pass, a decision took 16,000
// times the floor.
func BenchmarkIndexMatchesPatternOnce(b *testing.B) {
	name := sp(strings.Repeat("a-", 105) + "a")
	for i, pattern := range matchedOncePatterns {
		r := mustCompile(b, []string{"*"}, []string{pattern})
		p := r.deny.all()[0]
		subject := name.Name
		if r.deny.hasBase {
			subject = name.Base()
		}
		b.Run(fmt.Sprintf("deny=%d/floor", i), func(b *testing.B) {
			for b.Loop() {
				p.match(subject)
			}
		})
		b.Run(fmt.Sprintf("deny=%d/decide", i), func(b *testing.B) {
			for b.Loop() {
				r.Decide(name)
			}
		})
	}
}

// A regexp costs about twice a glob's memory and far more to compile: a
// config of 1 MiB of patterns needing one took 116 MiB to load, at every
// hook run (TestLoadIsBoundedBySize). The patterns matched by a regexp
// share one budget over all the targets compiled with it; past it a
// pattern is refused, naming itself and what to do.
func TestLinearBudgetSharedAndBounded(t *testing.T) {
	p := "*-{doc,man}" + strings.Repeat("x", 1000) // needs the linear matcher
	if !backtracks(p, false) {
		t.Fatalf("%q is matched by the glob: the test cannot see the budget", p)
	}
	fit := MaxLinear / len(p)
	b := NewBudget()
	for i := range fit {
		if _, err := CompileWith([]string{p}, nil, b); err != nil {
			t.Fatalf("target %d: %v", i, err)
		}
	}
	_, err := CompileWith(nil, []string{"hello", p}, b)
	var pe *PatternError
	if !errors.As(err, &pe) || pe.List != "deny" || pe.Index != 1 || !strings.Contains(pe.Reason, "linear matcher") || !strings.Contains(pe.Reason, fmt.Sprint(MaxLinear)) {
		t.Fatalf("pattern past the budget: %v, want it refused naming deny[1] and the bound", err)
	}
	// A budget of its own for each Compile.
	if _, err := Compile([]string{p}, nil); err != nil {
		t.Fatalf("Compile with a fresh budget: %v", err)
	}
}

// TestIndexTriedSetStaysCheap files thousands of patterns under one dash
// key and decides on a name passing it at each of its 52 dashes: each
// pattern is matched once, and telling those already tried costs no
// more than one allocation. A list searched at each pass, grown as it
// went (10 allocations here), took 15 times matching each pattern once;
// BenchmarkIndexTriedSet times that (a clock here failed by chance on a
// loaded machine).
func TestIndexTriedSetStaysCheap(t *testing.T) {
	r, name := triedSetRules(t)
	ps := r.deny.all()
	floor := testing.AllocsPerRun(5, func() {
		for _, p := range ps {
			p.match(name.Name)
		}
	})
	if n := testing.AllocsPerRun(5, func() { r.Decide(name) }); n > floor+1 {
		t.Errorf("a decision made %v allocations, matching each pattern once %v: the set of patterns tried grows", n, floor)
	}
	matches := make([]*int, len(ps))
	for i, p := range ps {
		matches[i] = countMatches(p)
	}
	if d := r.Decide(name); !d.Selected {
		t.Fatalf("denied by %s", d.Reason())
	}
	for i, n := range matches {
		if *n != 1 {
			t.Fatalf("deny %q: matched %d times in one decision, want once", ps[i].Text, *n)
		}
	}
}

// triedSetRules are 3,000 deny patterns under the dash key "dev", and a
// name passing it 52 times.
func triedSetRules(t testing.TB) (*Rules, storepath.Path) {
	var deny []string
	for i := range 3000 {
		deny = append(deny, fmt.Sprintf("*-dev[x]%d*", i))
	}
	return mustCompile(t, []string{"*"}, deny), sp(strings.Repeat("-dev", 52))
}

// BenchmarkIndexTriedSet decides on triedSetRules' name beside its
// floor, matching each pattern once.
func BenchmarkIndexTriedSet(b *testing.B) {
	r, name := triedSetRules(b)
	ps := r.deny.all()
	b.Run("floor", func(b *testing.B) {
		for b.Loop() {
			for _, p := range ps {
				p.match(name.Name)
			}
		}
	})
	b.Run("decide", func(b *testing.B) {
		for b.Loop() {
			r.Decide(name)
		}
	})
}

// TestCompileLeavesRegexpsToTheirFirstMatch compiles rules whose
// patterns all go to linear's regexp ("*-{a,b}-*", a star before a
// group) against the same rules without the leading star, which stay
// globs: the hook compiles every rule at each run and tries a few, so
// building every regexp there (several times a glob's cost) was paid
// for rules no path reached. A decision still uses the regexp.
func TestCompileLeavesRegexpsToTheirFirstMatch(t *testing.T) {
	var starred, plain []string
	for i := range 200 {
		starred = append(starred, fmt.Sprintf("*-{doc%d,man%d}-*", i, i))
		plain = append(plain, fmt.Sprintf("{doc%d,man%d}-*", i, i))
	}
	regexps := testing.AllocsPerRun(5, func() { mustCompile(t, starred, nil) })
	globs := testing.AllocsPerRun(5, func() { mustCompile(t, plain, nil) })
	if regexps > 1.5*globs {
		t.Errorf("compiling 200 patterns for regexps made %v allocations, for globs %v", regexps, globs)
	}
	r := mustCompile(t, starred, nil)
	for _, name := range []string{"x-man7-y", "x-man7", "doc7-y", "a-" + strings.Repeat("doc1-", 40)} {
		agreesWithNaive(t, r, starred, nil, sp(name))
	}
	if d := r.Decide(sp("x-man7-y")); d.Rule == nil || d.Rule.re == nil || d.Rule.re() == nil {
		t.Errorf("x-man7-y: %s, not by a regexp", d.Reason())
	}
}

// A pattern past MaxPattern was named by its first 64 bytes, which could
// end inside a UTF-8 character: %q then showed "ソ\xe3\x83…", bytes the
// pattern does not hold alone. It is cut before the character.
func TestLongPatternQuotedInWholeCharacters(t *testing.T) {
	for _, pre := range []string{"", "x", "xx"} {
		long := pre + strings.Repeat("ソ", MaxPattern)
		_, err := Compile(nil, []string{long})
		_, herr := CompileHosts([]string{long})
		for _, err := range []error{err, herr} {
			var pe *PatternError
			if !errors.As(err, &pe) || !utf8.ValidString(pe.Pattern) || !strings.HasPrefix(pe.Pattern, pre+"ソ") {
				t.Errorf("%s[:64]: %v", pre+"ソ…", err)
			}
		}
	}
}

// e31dd4c built a pattern's regexp at its first match and, should that
// fail, left the glob in its place. It fails on groups nested past
// regexp's bound ("{a{" 682 deep, within MaxPattern), where the glob
// took minutes on a name of 100 "a-" that any local user may choose.
// Such a pattern is refused at Compile again; one nested maxLazyDepth
// deep, the most left to the first match, always translates.
func TestDeepGroupsRefusedNotLeftToTheGlob(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("{*-{", n) + "x" + strings.Repeat(",}}", n) }
	deep := nest((MaxPattern - 1) / 7)
	if _, err := linear(deep, false); err == nil {
		t.Fatalf("%d levels translate: the test cannot see a failed regexp", (MaxPattern-1)/7)
	}
	_, err := Compile(nil, []string{"hello", deep})
	var pe *PatternError
	if !errors.As(err, &pe) || pe.List != "deny" || pe.Index != 1 || !strings.Contains(pe.Reason, "linear time") {
		t.Fatalf("deny[1] nested %d deep: %v, want it refused", (MaxPattern-1)/7, err)
	}
	for _, shape := range [][2]string{{"{*-{", ",}}"}, {"{a{", ",}}"}, {"{[a-b]{", ",*}}"}, {"*{", ",}"}} {
		lazy := strings.Repeat(shape[0], maxLazyDepth/2) + "x" + strings.Repeat(shape[1], maxLazyDepth/2)
		if groupDepth(lazy) > maxLazyDepth {
			t.Fatalf("%q nests %d deep", lazy, groupDepth(lazy))
		}
		if _, err := linear(lazy, false); err != nil {
			t.Errorf("%q, within maxLazyDepth: %v", lazy, err)
		}
		if _, err := linear(lazy, true); err != nil {
			t.Errorf("%q with '/', within maxLazyDepth: %v", lazy, err)
		}
	}
}

// hosts patterns went to the glob whatever their shape: a host name is
// root's and at most 64 bytes, but "{*-{*-,},}{*-,}{*-,}{*-,}{*-,}{*-,}x*"
// took 18 s on one, at every hook run. They take the engine allow and
// deny patterns take, and count against the same budget. Bounded as
// TestBacktrackingPatternOnHostileName is: the regexp is there, and
// the first match, on a short host, is checked before the long one.
func TestBacktrackingHostsPattern(t *testing.T) {
	host := strings.Repeat("a-", 32)[:63] + "a"
	for pattern, matching := range hostilePatterns {
		if strings.Contains(pattern, "/") {
			continue
		}
		h, err := CompileHosts([]string{"builder", strings.ToUpper(pattern)})
		if err != nil {
			t.Fatal(err)
		}
		p := h.compiled[1]
		if p.re == nil || p.re() == nil {
			t.Fatalf("hosts %q is matched by the glob matcher, which backtracks on a hostile name", pattern)
		}
		if !h.Match(strings.ToUpper(matching)) {
			t.Errorf("hosts %q does not match %s", pattern, matching)
		}
		if h.Match(host) {
			t.Errorf("hosts %q matches %s", pattern, host)
		}
	}
	b := NewBudget()
	b.left = 3
	p := "{*-{*-,},}x*"
	if _, err := CompileHostsWith([]string{p}, b); err == nil || !strings.Contains(err.Error(), "hosts[0]") || !strings.Contains(err.Error(), "linear matcher") {
		t.Errorf("a hosts pattern past the budget: %v, want it refused", err)
	}
}
