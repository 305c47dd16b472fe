package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// Every hook.conf the documentation shows as a ```toml block loads as it
// stands: a reader copies it whole. (Here rather than in internal/config,
// whose tests the Nix package runs on a source without the docs.)
func TestDocTOMLBlocksLoad(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), config.EnvPrefix+"_") {
			t.Setenv(name, "") // an empty variable counts as unset
		}
	}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, doc := range append([]string{"../README.md"}, docs...) {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range tomlBlocks(string(text)) {
			n++
			file := filepath.Join(t.TempDir(), "hook.conf")
			if err := os.WriteFile(file, []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(file); err != nil {
				t.Errorf("%s:%d: the hook.conf shown does not load:\n%s\n%v", filepath.Base(doc), b.line, b.text, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no ```toml block found in README.md or docs/*.md")
	}
}

type docBlock struct {
	line int // of the opening fence
	text string
}

// tomlBlocks returns the fenced ```toml blocks of a Markdown text.
func tomlBlocks(md string) []docBlock {
	var blocks []docBlock
	var cur *docBlock
	for i, l := range strings.Split(md, "\n") {
		fence := strings.TrimSpace(l)
		switch {
		case cur == nil && fence == "```toml":
			cur = &docBlock{line: i + 1}
		case cur != nil && fence == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	return blocks
}

// The store URIs the README gives as refused when the config loads (a
// relative file:// directory or unix:// socket, which nix copy would take
// from the worker's working directory) are named there and refused by
// Load, naming the store: the hook queues nothing for a target the worker
// would refuse at every push.
func TestDocStoresRefusedAtLoad(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), config.EnvPrefix+"_") {
			t.Setenv(name, "")
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"file://cache", "file://host/dir", "file:cache", "unix://run/sock"} {
		if !strings.Contains(string(readme), "`"+store+"`") {
			t.Errorf("README.md does not name %s among the stores refused at load", store)
		}
		file := filepath.Join(t.TempDir(), "hook.conf")
		if err := os.WriteFile(file, []byte("store = \""+store+"\"\nallow = [\"*\"]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(file); err == nil || !strings.Contains(err.Error(), "absolute path") {
			t.Errorf("store = %q: Load gave %v, want it refused as not absolute, as README.md says", store, err)
		}
	}
}
