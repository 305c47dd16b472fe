package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termtest"
)

// manPage is the checked-in man page, which packages install.
const manPage = "../cachix-filter-hook.1"

// The man page is made from the command table: the checked-in one must be
// what the table makes now.
func TestManPageCurrent(t *testing.T) {
	want := generated(t, "__man")
	got, err := os.ReadFile(manPage)
	if err != nil {
		t.Fatalf("%v (make man writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the command table makes: run `make man` and commit it", filepath.Base(manPage))
	}
}

// It is valid man(7) (mandoc's lint, warnings included) and renders with
// man-db's man, with every command in it.
func TestManPageRenders(t *testing.T) {
	t.Run("mandoc", func(t *testing.T) {
		mandoc := termtest.Require(t, "mandoc")
		if out, err := exec.Command(mandoc, "-T", "lint", "-W", "warning", manPage).CombinedOutput(); err != nil {
			t.Fatalf("mandoc -T lint: %v\n%s", err, out)
		}
	})
	t.Run("man", func(t *testing.T) {
		man := termtest.Require(t, "man")
		cmd := exec.Command(man, "-l", manPage)
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80", "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("man -l: %v\n%s", err, out)
		}
		text := string(out)
		for _, want := range []string{"CACHIX-FILTER-HOOK(1)", "SYNOPSIS", "COMMANDS", "--config FILE", "EXIT STATUS"} {
			if !strings.Contains(text, want) {
				t.Errorf("man -l shows no %q:\n%s", want, text)
			}
		}
		var e env
		for _, c := range e.commands() {
			if !c.hidden && !strings.Contains(text, "\n   "+c.name) {
				t.Errorf("man -l shows no section for %s", c.name)
			}
		}
		if strings.Contains(text, "spawned") || strings.Contains(text, "__") {
			t.Errorf("man -l shows an internal command or flag")
		}
	})
}

// The man page's exit statuses are those wait and push --wait return: it
// said 1 for a path not pushed, where they exit 3.
func TestManPageExitStatus(t *testing.T) {
	page := string(generated(t, "__man"))
	_, section, _ := strings.Cut(page, ".SH EXIT STATUS\n")
	section, _, _ = strings.Cut(section, ".SH ")
	for _, code := range []int{exitOK, exitError, exitUsage, exitNotSent} {
		if !slices.Contains(strings.FieldsFunc(section, func(r rune) bool { return r < '0' || r > '9' }), strconv.Itoa(code)) {
			t.Errorf("EXIT STATUS names no status %d:\n%s", code, section)
		}
	}
	if !strings.Contains(section, "wait") {
		t.Errorf("EXIT STATUS says nothing of wait:\n%s", section)
	}
	// watch-exec's own: runCommand's 127 and 126, and the 1 of a
	// command not run (it said only "its command's status").
	for _, s := range []string{`watch\-exec`, "127", "126", "signal came before"} {
		if !strings.Contains(section, s) {
			t.Errorf("EXIT STATUS does not say %q of watch-exec:\n%s", s, section)
		}
	}
}

// The man page says which commands take --config: it said every command
// does, and completion, version and help refuse it.
func TestManPageConfigFlag(t *testing.T) {
	page := string(generated(t, "__man"))
	_, options, _ := strings.Cut(page, "\nEvery command")
	options, _, _ = strings.Cut(options, "\n")
	var e env
	var help bool
	for _, c := range visible(e.commands()) {
		takes := slices.ContainsFunc(commandFlags(&e, c, &help), func(d flagDef) bool { return d.name == "config" })
		if !takes && !strings.Contains(options, " "+roff(c.name)) {
			t.Errorf("the man page does not say that %s takes no --config: %q", c.name, options)
		}
	}
}
