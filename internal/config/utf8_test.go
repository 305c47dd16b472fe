package config

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// A target's name from the environment may hold bytes that are not
// UTF-8: the metrics' label values (UTF-8) replaced them, so two names
// could become one series and node exporter dropped the file. Such a
// name is refused, naming the variable. (A store may name a directory
// whose name is not UTF-8: see cli's TestStatusEscapesWhatItRead.)
func TestEnvNameNotUTF8Refused(t *testing.T) {
	for _, val := range []string{"w\xff", "\xe6\x97"} {
		isolate(t)
		t.Setenv(EnvName("name"), val)
		t.Setenv(EnvName("cache"), "c")
		t.Setenv(EnvName("allow"), "*")
		t.Setenv(EnvName("queue.dir"), "/q")
		_, err := Load("")
		if err == nil || !strings.HasPrefix(err.Error(), EnvName("name")+": ") || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s = %q: Load = %v, want an error naming the variable and UTF-8", EnvName("name"), val, err)
		}
	}
	// The file's parser refuses such bytes itself.
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "name = \"w\xff\"\n"+minimal)
	if _, err := Load(file); err == nil {
		t.Errorf("a name not UTF-8 in the file loaded")
	}
}

// A target with no name is named after its store, which may come from
// the environment with bytes that are not UTF-8: that name reached the
// metrics (and state.json, the queue's entries, the history: JSON)
// with U+FFFD for them, so that a store whose name holds U+FFFD itself
// became the same series, and the target's entries another's. The name
// made from the store is UTF-8, and each such store's is its own.
func TestStoreNameNotUTF8(t *testing.T) {
	isolate(t)
	t.Setenv(EnvName("store"), "/srv/a\xff")
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"),
		"allow = [\"*\"]\n[queue]\ndir = \"/tmp/q\"\n[[target]]\nstore = \"/srv/a\uFFFD\"\nallow = [\"*\"]\n")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 {
		t.Fatalf("targets: %d, want 2", len(c.Targets))
	}
	a, b := c.Targets[0].Name, c.Targets[1].Name
	if !utf8.ValidString(a) || !utf8.ValidString(b) || strings.ToValidUTF8(a, "\uFFFD") == strings.ToValidUTF8(b, "\uFFFD") {
		t.Errorf("names %q and %q: want both UTF-8, and distinct", a, b)
	}
}

// The name made from a store wrote its bad bytes as \xNN but left a
// backslash as it was: a store from the environment ending in the byte
// 0xff and one in the file ending in the four characters "\xff" were
// both named "/srv/a\xff", one target twice to the queue and the
// metrics (and the config refused as naming two targets alike).
func TestStoreNameBackslash(t *testing.T) {
	isolate(t)
	t.Setenv(EnvName("store"), "/srv/a\xff")
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"),
		"allow = [\"*\"]\n[queue]\ndir = \"/tmp/q\"\n[[target]]\nstore = '/srv/a\\xff'\nallow = [\"*\"]\n")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := c.Targets[0].Name, c.Targets[1].Name; a != `/srv/a\xff` || b != `/srv/a\\xff` {
		t.Errorf("names %q and %q, want %q and %q", a, b, `/srv/a\xff`, `/srv/a\\xff`)
	}
}
