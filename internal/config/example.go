package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

//go:generate go test -run TestExampleIsCurrent -update .

// exampleHead opens hook.conf.example.
const exampleHead = `# hook.conf: which store paths cachix-filter-hook pushes, and where.
# Made from the schema (internal/config/schema.go) by ` + "`go generate ./internal/config`" + `.
#
# Looked up in this order (the first that exists wins):
#   --config FILE
#   $CACHIX_FILTER_HOOK_CONFIG
#   $XDG_CONFIG_HOME/cachix-filter-hook/hook.conf  (~/.config/... when unset)
#   /etc/cachix-filter-hook/hook.conf  (as root: before root's own file)
#
# Keys are lower case, one spelling each. Every scalar key, and every
# list (%s) as space-separated words, can be
# overridden from the environment as CACHIX_FILTER_HOOK_<KEY>, dots as
# underscores:
# CACHIX_FILTER_HOOK_CACHE, CACHIX_FILTER_HOOK_QUEUE_DIR,
# CACHIX_FILTER_HOOK_CACHIX_AUTH_TOKEN_FILE. An unknown key, table or
# CACHIX_FILTER_HOOK_* variable is an error. ` + "`cachix-filter-hook validate`" + `
# prints the effective configuration, after checking the files and
# programs it names. The file is at most 1 MiB, with at most %d keys
# (%d to a table), %d tables and %d array elements; tables, dotted
# keys, arrays and inline tables nest at most %d levels deep.
#
# Trust. Running as root (the hook under nix-daemon), root accepts only
# what nobody else can change, since this file names the programs root
# runs and the paths root pushes (OpenSSH's StrictModes rule, on the real
# path after symlinks; running as a user, root's or that user's):
#   - this file, owned by root and writable by nobody else;
#   - the token file and the signing keys: the same, and readable by
#     nobody else either (chmod 600);
#   - cachix.bin after the PATH lookup, nix and nix-store in nix.bin_dir:
#     owned by root, writable by nobody else; programs in the Nix store
#     pass;
#   - cachix's own cachix.dhall, which names where the token goes
#     (the file a -c or --config in cachix.push_args names, else in
#     $XDG_CONFIG_HOME/cachix, else ~/.config/cachix, of the worker's
#     environment): the same (mode 0644 is fine), or, when it is missing,
#     in a directory nobody else can make it in. The worker checks it
#     before each cachix call (validate and doctor with the environment
#     it will have), and a push refused for it says why in status and log;
#   - every directory above any of these, up to /: owned by root, not
#     writable by group or others; a sticky directory such as /tmp or
#     /nix/store only for its own entries, which nobody else can rename;
#   - queue.dir: owned by the running user, mode 0700, never a symlink.
#     It is made if missing, with what is missing above it, except below
#     a directory another user can write (/tmp): make that part yourself.
# Whatever fails is refused, naming its owner, its mode and the fix.
#
# Patterns are globs (` + "`*`, `?`, `[a-z]`, `{a,b}`" + `). A pattern without ` + "`/`" + `
# matches the store path's name, the part after the hash
# (` + "`hello-2.12.1`, `hello-2.12.1-doc`" + `); one starting with ` + "`/`" + ` matches the
# whole path (` + "`/nix/store/*-hello-*`" + `). A path goes to a target when an allow
# pattern matches it and no deny pattern does: deny wins. An empty allow list
# selects nothing; allow = ["*"] selects everything.
`

// noteColumn is where the comment beside a key's line starts.
const noteColumn = 28

// Example renders hook.conf.example from the schema: every key, with its
// documentation and its default.
func Example() string {
	var b strings.Builder
	// The lists, from the schema: the text named three of five.
	var lists []string
	for _, k := range keys {
		if k.kind == kList {
			lists = append(lists, k.name[strings.LastIndexByte(k.name, '.')+1:])
		}
	}
	fmt.Fprintf(&b, exampleHead, strings.Join(lists, "/"), maxKeys, maxTableKeys, maxTables, maxElements, MaxNesting)
	section := ""
	for i := range keys {
		k := &keys[i]
		name := k.name
		if k.scope == sSection {
			sec, rest, _ := strings.Cut(k.name, ".")
			if sec != section {
				fmt.Fprintf(&b, "\n[%s]\n", sec)
				section = sec
			}
			name = rest
		} else if k.group != "" || k.doc != "" {
			b.WriteString("\n")
		}
		if k.group != "" {
			comment(&b, "", k.group)
			if k.doc != "" {
				b.WriteString("#\n")
			}
		}
		comment(&b, "", k.doc)
		if k.kind == kTargets {
			comment(&b, "", "[[target]]\ncache = \"work\"\nallow = [\"openc910-*\"]")
			continue
		}
		line := name + " = " + k.exampleValue()
		if k.hidden {
			line = "# " + line
		}
		note := k.note
		if note == "" && k.scope != sSection && (k.def != nil || k.defDoc != "" || k.kind != kString) {
			note = "default: " + k.defaultText()
		}
		if note == "" {
			b.WriteString(line + "\n")
			continue
		}
		if len(line) >= noteColumn-1 {
			line += " "
		}
		b.WriteString(fmt.Sprintf("%-*s", noteColumn-1, line))
		comment(&b, strings.Repeat(" ", noteColumn-1), note)
	}
	return b.String()
}

// comment writes text as comment lines, the first after what the line
// has, the others indented by indent.
func comment(b *strings.Builder, indent, text string) {
	if text == "" {
		return
	}
	for i, l := range strings.Split(text, "\n") {
		if i > 0 {
			b.WriteString(indent)
		}
		if l == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# " + l + "\n")
	}
}

// exampleValue is what the example's line sets: its example, or its
// default.
func (k *key) exampleValue() string {
	if k.example != "" {
		return k.example
	}
	return k.defaultTOML()
}

// defaultText says what the default is, for the documentation.
func (k *key) defaultText() string {
	if k.defDoc != "" {
		return k.defDoc
	}
	return k.defaultTOML()
}

// defaultTOML is the default value as TOML: sizes in bytes.
func (k *key) defaultTOML() string {
	switch {
	case k.kind == kDuration:
		return strconv.Quote(HumanDuration(k.def.(time.Duration)))
	case k.def != nil:
		return tomlValue(k.def)
	case k.kind == kList:
		return "[]"
	case k.kind == kSize || k.kind == kInt:
		return "0"
	case k.kind == kBool:
		return "false"
	}
	return `""`
}
