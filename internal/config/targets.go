package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termwidth"
)

// targets builds the default target from the top-level keys and one more
// per [[target]] table.
func (l *loader) targets(c *Config, labels []string) {
	top := map[string]any{}
	for key, k := range targetKeys {
		if k.scope == sInherited {
			continue // defaults for every target, see pathRules
		}
		if val, from := l.get(key); val != nil {
			top[key] = val
			if from != l.file {
				// Values from the environment are strings; lists
				// are space-separated words.
				if k.kind == kList {
					top[key] = strings.Fields(val.(string))
				}
			}
		}
	}
	if len(top) > 0 {
		t := l.target(c, "", top)
		t.top, t.Label = true, "top level"
		c.Targets = append(c.Targets, t)
	}
	raw, from := l.get("target")
	var tables []map[string]any
	switch x := raw.(type) {
	case nil:
	case string:
		// From the environment: a table cannot be written there.
		l.errorf("%s: target: a [[target]] table can only be written in the config file; from the environment, set the keys of the top-level target (%s, %s, %s...)", from, EnvName("cache"), EnvName("store"), EnvName("allow"))
	case []map[string]any:
		tables = x
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				l.errorf("%s: target[%d]: expected a table, got %s", l.file, i, describe(e))
				continue
			}
			tables = append(tables, m)
		}
	default:
		l.typeError(l.file, "target", kTargets, raw)
	}
	for i, m := range tables {
		t := l.target(c, fmt.Sprintf("target[%d].", i), m)
		if t.Label = fmt.Sprintf("[[target]] #%d", i+1); i < len(labels) {
			t.Label = labels[i]
		}
		c.Targets = append(c.Targets, t)
	}
	if len(c.Targets) == 0 && len(l.errs) == 0 {
		where := "no config file found (looked in " + strings.Join(SearchPath(), ", ") + ")"
		if c.File != "" {
			where = c.File
		}
		l.errorf("%s: no target: set cache or store (or %s / %s), or add a [[target]]", where, EnvName("cache"), EnvName("store"))
	}
	seen := map[string]*Target{}
	for _, t := range c.Targets {
		if first := seen[t.Name]; t.Name != "" && first != nil {
			where := l.file
			if first.top {
				// The default target's name may come from the
				// environment.
				where = l.topWhere("", "name", "cache", "store")
			}
			l.errorf("%s: two targets are named %q; give one a different name", where, t.Name)
		}
		seen[t.Name] = t
		if t.Rules != nil && t.Rules.Empty() && !t.PackageLists {
			c.Warnings = append(c.Warnings, fmt.Sprintf("target %q has an empty allow list: it selects nothing", t.Name))
		}
	}
}

func (l *loader) target(c *Config, prefix string, m map[string]any) *Target {
	from := func(key string) string {
		if prefix == "" {
			return l.fromOf(key)
		}
		return l.file
	}
	for key := range m {
		if _, ok := targetKeys[key]; !ok {
			if l.full() {
				l.more++ // no suggestion worked out
			} else {
				l.errorf("%s: unknown key %q%s", l.file, prefix+key, didYouMean(key, targetKeys))
			}
		}
	}
	str := func(key string) string {
		if val, ok := m[key]; ok {
			return l.asString(from(key), prefix+key, val, "")
		}
		return ""
	}
	sources := map[string]string{}
	for key := range m {
		if _, ok := targetKeys[key]; ok {
			sources[key] = "file"
			if prefix == "" {
				sources[key] = l.sources[key]
			}
		}
	}
	t := &Target{
		sources:     sources,
		Name:        str("name"),
		Cache:       str("cache"),
		Store:       str("store"),
		Allow:       l.asList(l.file, prefix+"allow", m["allow"]),
		Deny:        l.asList(l.file, prefix+"deny", m["deny"]),
		ClosureDeny: str("closure_deny"),
		Hosts:       l.asList(l.file, prefix+"hosts", m["hosts"]),
		Host:        c.Host,
	}
	label := prefix
	if label == "" {
		label = "top level: "
	} else {
		label = strings.TrimSuffix(label, ".") + ": "
	}
	switch {
	case t.Cache != "" && t.Store != "":
		// Name the variable when one of them came from the
		// environment: the file may be right.
		where, both := from("cache"), ""
		if where == l.file {
			where = from("store")
		}
		if where != l.file {
			both = fmt.Sprintf(" (cache from %s, store from %s)", from("cache"), from("store"))
		}
		l.errorf("%s: %sboth cache and store are set%s; a target pushes to exactly one", where, label, both)
	case t.Cache == "" && t.Store == "":
		l.errorf("%s: %sneither cache nor store is set", l.topWhere(prefix, "allow", "deny", "closure_deny", "name"), label)
	case t.Cache != "" && !cacheName().MatchString(t.Cache):
		// A store URI written as cache may carry credentials.
		l.errorf("%s: %scache: %q is not a cache name", from("cache"), prefix, RedactURI(t.Cache))
	case t.Store != "" && !oneLine(t.Store):
		// Named, as a name's is: "not a Nix store URI" said wrong
		// of one that is but for it. The URI is not quoted.
		l.errorf("%s: %sstore: it holds %s, a control character, line separator or bidirectional control, which no store URI may", from("store"), prefix, escape.NotOneLine(t.Store))
	case t.Store != "" && !validStore(t.Store):
		// Not quoted: a URI that does not parse may hold a password.
		l.errorf("%s: %sstore: not a Nix store URI (scheme://... or an absolute path)", from("store"), prefix)
	case t.Store != "" && storeCredentials(t.Store) != "":
		// nix copy gets the URI in argv, which any user can read.
		l.errorf("%s: %sstore: %q carries %s, which would be in nix copy's command line (readable by every user in /proc) and in logs; %s",
			from("store"), prefix, RedactURI(t.Store), storeCredentials(t.Store), credentialsFix(t.Store))
	}
	if param := relativeStoreFile(t.Store); param != "" && validStore(t.Store) {
		// As secret_key_file is: refused at load, not at every push.
		l.errorf("%s: %sstore: its %s= must be an absolute path%s", from("store"), prefix, param, notShown)
	}
	if relativeFileStore(t.Store) && validStore(t.Store) && storeCredentials(t.Store) == "" {
		l.errorf("%s: %sstore: %q: a file:// store's directory must be an absolute path (file:///srv/cache, three slashes)", from("store"), prefix, t.Store)
	}
	if r, fix := relativeLocalStore(t.Store, 0); r != "" && validStore(t.Store) && storeCredentials(t.Store) == "" {
		// Not checked: LocalStoreDirs takes absolute paths only.
		l.errorf("%s: %sstore: %q: a local store's %s must be an absolute path: nix copy, run by the worker, would take it from the worker's working directory (/), not the one meant; write it from / (%s)", from("store"), prefix, t.Store, r, fix)
	}
	if r, fix := relativeUnixSocket(t.Store, 0); r != "" && validStore(t.Store) && storeCredentials(t.Store) == "" {
		// As the worker's check (CheckStoreDirs) would, at every push.
		l.errorf("%s: %sstore: %q: a unix:// store's %s must be an absolute path: nix copy, run by the worker, would look it up from the worker's working directory (/), not the one meant; name it from / (%s)", from("store"), prefix, t.Store, r, fix)
	}
	if !utf8.ValidString(t.Name) {
		// From the environment: the metrics' labels are UTF-8, and
		// two names made alike there would be one series twice.
		l.errorf("%s: %sname: %q holds a byte that is not UTF-8; a name is shown as text (status, metrics)", from("name"), prefix, t.Name)
	} else if !oneLine(t.Name) {
		// Shown on one line in logs, status and the history.
		l.errorf("%s: %sname: %q holds %s, a control character, line separator or bidirectional control; a name is shown on one line", from("name"), prefix, t.Name, escape.NotOneLine(t.Name))
	}
	if t.Name == "" {
		t.Name = t.Cache
		if t.Name == "" {
			// A store from the environment may not be UTF-8, as a
			// name may not (see above): its bytes are written as
			// \xNN, so that JSON and the metrics keep the name, and
			// keep it apart from a store written with U+FFFD, or with
			// the four characters "\xff" (Exact, not Controls).
			t.Name = escape.Exact(RedactURI(t.Store))
		}
	}
	switch t.ClosureDeny {
	case "":
		// Deny wins by default, inside closures too (see package
		// policy).
		t.ClosureDeny = byName["closure_deny"].def.(string)
	case ClosurePush, ClosureSkip:
	default:
		l.errorf("%s: %sclosure_deny: must be \"push\" or \"skip\", got %q", from("closure_deny"), prefix, t.ClosureDeny)
	}
	rules, err := filter.CompileWith(t.Allow, t.Deny, l.linear)
	if err != nil {
		var pe *filter.PatternError
		for _, e := range unwrapAll(err) {
			if errors.As(e, &pe) {
				l.errorf("%s: %s%s[%d]: %s", from(pe.List), prefix, pe.List, pe.Index, badPattern(pe))
			} else {
				l.errorf("%s: %s%v", l.file, prefix, e)
			}
		}
	}
	t.Rules = rules
	// Valid, but never what was meant: a store path's name is never
	// empty (a Nix module rendering an unset value gives this).
	for _, l := range []struct {
		list     string
		patterns []string
	}{{"allow", t.Allow}, {"deny", t.Deny}} {
		list := l.list
		for i, text := range l.patterns {
			if text == "" {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s%s[%d] is \"\": an empty pattern matches no path", from(list), prefix, list, i))
			}
			// A name pattern is matched against "<hash>-<name>", which
			// holds no '/': "nix/store/*-secret" denies nothing.
			if text != "" && text[0] != '/' && strings.Contains(text, "/") {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s%s[%d] = %q holds a '/' but does not start with one: it is matched against the name after the hash, which holds none, so it matches no path (a whole path starts with '/': \"%s/...\")", from(list), prefix, list, i, text, storepath.StoreDir()))
			}
		}
	}
	if _, set := m["hosts"]; set {
		hosts, err := filter.CompileHostsWith(t.Hosts, l.linear)
		var pe *filter.PatternError
		for _, e := range unwrapAll(err) {
			if errors.As(e, &pe) {
				l.errorf("%s: %shosts[%d]: %s", from("hosts"), prefix, pe.Index, badPattern(pe))
			}
		}
		t.HostRules = hosts
		if len(t.Hosts) == 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("target %q has an empty hosts list: it is off on every host", t.Name))
		}
	}
	l.pathRules(c, t, prefix, m, from)
	return t
}

// topWhere names what made the default target (prefix ""): the first of
// keys set from the environment, else the file. For a [[target]], the
// file.
func (l *loader) topWhere(prefix string, keys ...string) string {
	if prefix == "" {
		for _, key := range keys {
			if w := l.fromOf(key); w != l.file {
				return w
			}
		}
	}
	return l.file
}

// badPattern says what is wrong with a pattern: with a caret under the
// place, for a syntax error, counted in the columns the pattern shows
// in (its controls escaped, as every message's are; a CJK character
// two), not in bytes or characters; with none when the whole pattern is
// at fault (its length, the linear budget), where a caret at its start
// pointed at nothing. Ambiguous characters count one column, as most
// terminals draw them: the message may be read in a log, too.
func badPattern(pe *filter.PatternError) string {
	if pe.Offset < 0 || pe.Offset > len(pe.Pattern) {
		return fmt.Sprintf("bad pattern %q: %s", pe.Pattern, pe.Reason)
	}
	shown := func(s string) string {
		return escape.Controls(strings.NewReplacer("\t", `\x09`, "\n", `\x0a`).Replace(s))
	}
	col := termwidth.Columns{}.String(shown(pe.Pattern[:pe.Offset]))
	return fmt.Sprintf("bad pattern %q: %s at offset %d\n    %s\n    %s^", pe.Pattern, pe.Reason, pe.Offset, shown(pe.Pattern), strings.Repeat(" ", col))
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// oneLine reports whether s holds no control character, line separator
// nor bidirectional control, which would end or hide part of a line it
// is shown on, or make it read backwards.
func oneLine(s string) bool { return escape.OneLine(s) }

func validStore(s string) bool {
	// url.Parse refuses control characters in a URI, not in a path;
	// the store is a target's name when it has none.
	if !oneLine(s) {
		return false
	}
	if strings.HasPrefix(s, "/") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && !strings.HasPrefix(s, "-")
}
