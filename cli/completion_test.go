package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termtest"
)

// generated runs the program as a user would and returns its stdout.
func generated(t *testing.T, args ...string) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{ctx: t.Context(), stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, version: "test"}
	if st := e.main(args); st != 0 {
		t.Fatalf("cachix-filter-hook %s exited %d: %s", strings.Join(args, " "), st, errOut.String())
	}
	return out.Bytes()
}

// completionWorld is a directory with a config of two targets, files to
// complete, and the completion scripts.
func completionWorld(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	conf := "cache = \"main\"\nallow = [\"*\"]\n[[target]]\nname = \"work\"\ncache = \"w\"\nallow = [\"*\"]\n"
	for name, text := range map[string]string{"my.conf": conf, "result-a": "", "result-b": "", "-odd": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if err := os.WriteFile(filepath.Join(dir, "completion."+sh), generated(t, "completion", sh), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The bash completion, sourced in a real bash and driven as bash drives it
// (COMP_WORDS, COMP_CWORD): commands, flags, target names from the config
// given on the line, files, and nothing internal.
func TestBashCompletion(t *testing.T) {
	bash := termtest.Require(t, "bash")
	dir := completionWorld(t)
	cases := []struct {
		words []string // the line; the last is the word completed
		want  []string // exactly these, in any order
	}{
		{[]string{"st"}, []string{"status"}},
		{[]string{"wa"}, []string{"wait", "watch-exec"}},
		{[]string{"--config", "my.conf", "st"}, []string{"status"}},
		{[]string{"--"}, []string{"--config", "--help", "--version"}},
		{[]string{"worker", "--"}, []string{"--once", "--config", "--help"}},
		{[]string{"version", "-"}, []string{"--help", "-h"}},
		{[]string{"wait", "--t"}, []string{"--timeout"}},
		{[]string{"wait", "--timeout", ""}, nil},
		{[]string{"--config", "my.conf", "log", "--target", ""}, []string{"main", "work"}},
		{[]string{"log", "--config", "my.conf", "--target", "w"}, []string{"work"}},
		{[]string{"forget", "--config", "=", "my.conf", "--target", "=", ""}, []string{"main", "work"}},
		{[]string{"log", "--target", ""}, nil}, // no config: no names
		{[]string{"--config", "my"}, []string{"my.conf"}},
		{[]string{"push", "res"}, []string{"result-a", "result-b"}},
		{[]string{"explain", "--json", "result-a", "res"}, []string{"result-a", "result-b"}},
		{[]string{"push", "--", "-o"}, []string{"-odd"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"help", "w"}, []string{"wait", "watch-exec", "worker"}},
		{[]string{"status", ""}, []string{"--json", "--prometheus", "--config", "--help", "-h"}},
	}
	var script strings.Builder
	script.WriteString("cd " + dir + " && source ./completion.bash || exit 1\ncomplete -p cachix-filter-hook\n")
	script.WriteString(`t() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _cachix_filter_hook; echo "= ${#COMPREPLY[@]}"; ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}"; }` + "\n")
	for _, c := range cases {
		script.WriteString("t cachix-filter-hook")
		for _, w := range c.words {
			fmt.Fprintf(&script, " %q", w)
		}
		script.WriteString("\n")
	}
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script.String())
	// Without --config on the line, a config that does not exist: not
	// this machine's.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "none"), "CACHIX_FILTER_HOOK_CONFIG="+filepath.Join(dir, "none.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if lines[0] != "complete -F _cachix_filter_hook cachix-filter-hook" {
		t.Fatalf("complete -p says %q", lines[0])
	}
	lines = lines[1:]
	for _, c := range cases {
		var n int
		if len(lines) == 0 {
			t.Fatalf("output ends before %q", c.words)
		}
		if _, err := fmt.Sscanf(lines[0], "= %d", &n); err != nil || len(lines) < n+1 {
			t.Fatalf("%q: unexpected output %q", c.words, lines)
		}
		got := slices.Clone(lines[1 : 1+n])
		lines = lines[1+n:]
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("cachix-filter-hook %s<TAB>: %q, want %q", strings.Join(c.words, " "), got, want)
		}
	}
}

// The completion of every shell offers no internal command or flag.
func TestCompletionHidesInternals(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		s := string(generated(t, "completion", sh))
		for _, internal := range []string{"spawned", "__man"} {
			if strings.Contains(s, internal) {
				t.Errorf("the %s completion offers %s", sh, internal)
			}
		}
	}
}

// fish completes a command line with `complete -C`, as it does at a TAB.
func TestFishCompletion(t *testing.T) {
	fish := termtest.Require(t, "fish")
	dir := completionWorld(t)
	for _, c := range []struct {
		line string
		want []string
	}{
		{"cachix-filter-hook st", []string{"status"}},
		{"cachix-filter-hook --config my.conf log --target ", []string{"main", "work"}},
		{"cachix-filter-hook forget --config my.conf --target w", []string{"work"}},
		{"cachix-filter-hook worker --", []string{"--config", "--help", "--once"}},
		{"cachix-filter-hook push res", []string{"result-a", "result-b"}},
		{"cachix-filter-hook completion ", []string{"bash", "fish", "zsh"}},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", fmt.Sprintf("source completion.fish; complete -C%s", fishQuote(c.line)))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "none"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s<TAB>: %q, want %q", c.line, got, c.want)
		}
	}
}

// A TAB in an interactive bash and zsh, in a terminal: st<TAB> becomes
// status; zsh lists the targets of the config named on the line.
func TestCompletionAtTheTerminal(t *testing.T) {
	dir := completionWorld(t)
	env := append(os.Environ(), "HOME="+dir, "TERM=xterm", "PS1=$ ")
	t.Run("bash", func(t *testing.T) {
		termtest.Require(t, "bash")
		tm := termtest.Start(t, env, 120, 40, "bash", "--norc", "--noprofile")
		tm.Send("cd "+dir+" && source ./completion.bash && echo sourced", "Enter")
		tm.Await("\nsourced")
		tm.Send("cachix-filter-hook st", "Tab")
		tm.Await("$ cachix-filter-hook status")
	})
	t.Run("zsh", func(t *testing.T) {
		termtest.Require(t, "zsh")
		tm := termtest.Start(t, env, 120, 40, "zsh", "-f", "-i")
		tm.Send("cd "+dir+" && autoload -Uz compinit && compinit -u && source ./completion.zsh && echo sourced", "Enter")
		tm.Await("\nsourced")
		tm.Send("cachix-filter-hook st", "Tab")
		tm.Await("$ cachix-filter-hook status")
		tm.Send("C-u", "cachix-filter-hook log --config my.conf --target ", "Tab")
		tm.Await("main  work")
	})
}

// A target's name is any string: bash offers each whole, quoted for the
// line, and runs none (compgen -W split "my cache" in two and ran the
// $(...) of a name).
func TestBashCompletionOddTargetNames(t *testing.T) {
	bash := termtest.Require(t, "bash")
	dir := completionWorld(t)
	ran := filepath.Join(dir, "ran")
	conf := fmt.Sprintf("[[target]]\nname = \"$(touch %s)\"\ncache = \"a\"\nallow = [\"*\"]\n", ran) +
		"[[target]]\nname = \"my cache\"\ncache = \"b\"\nallow = [\"*\"]\n" +
		"[[target]]\nname = \"*\"\ncache = \"c\"\nallow = [\"*\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "odd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `cd "$1" && source ./completion.bash || exit 1
for cur in "" m; do
    COMP_WORDS=(cachix-filter-hook --config odd.conf log --target "$cur"); COMP_CWORD=5; COMPREPLY=()
    _cachix_filter_hook
    echo "= ${#COMPREPLY[@]}"; ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}"
done
`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script, "bash", dir)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "none"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	want := fmt.Sprintf("= 3\n\\$\\(touch\\ %s\\)\nmy\\ cache\n\\*\n= 1\nmy\\ cache\n", ran)
	if string(out) != want {
		t.Errorf("completed\n%s\nwant\n%s", out, want)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("completing --target ran the $(...) in a target's name")
	}
}

// zsh offers a target name with a colon whole: a store target's default
// name is its URI, and _describe took "ssh" for the name and "//builder"
// for its description.
func TestZshCompletionTargetNameWithColon(t *testing.T) {
	termtest.Require(t, "zsh")
	dir := completionWorld(t)
	conf := "[[target]]\nstore = \"ssh://builder\"\nallow = [\"*\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "store.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+dir, "TERM=xterm", "PS1=$ ")
	tm := termtest.Start(t, env, 120, 40, "zsh", "-f", "-i")
	tm.Send("cd "+dir+" && autoload -Uz compinit && compinit -u && source ./completion.zsh && echo sourced", "Enter")
	tm.Await("\nsourced")
	tm.Send("cachix-filter-hook log --config store.conf --target ", "Tab")
	tm.Await("$ cachix-filter-hook log --config store.conf --target ssh://builder")
}
