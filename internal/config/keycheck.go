package config

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/suggest"
)

// One spelling per key. A loader that folds case (viper did) lets
// `Deny = []` after `deny = ["*-doc"]` silently replace the deny list, and
// reads `DENY` though keys are lower case: the keys are checked as
// written, before any is read, in the file and in the environment. Unknown keys and tables are errors too: a misspelt "alow"
// would otherwise select nothing, silently.

// checkKeys checks the file's keys as written: two keys of a table that
// fold to the same name, a key not in lower case, an unknown key or
// table (naming the closest known one), a section that is not a table.
// The keys of a [[target]] are checked for spelling here and known by
// target.
func (l *loader) checkKeys(raw map[string]any) {
	top := func(n string) bool { return byName[n] != nil || sections[n] || n == "target" }
	for _, name := range l.spelling("", raw, top, byName) {
		val := raw[name]
		switch {
		case sections[name]:
			m, ok := val.(map[string]any)
			if !ok {
				l.errorf("%s: %s: expected a table ([%s])", l.file, name, name)
				continue
			}
			inSection := func(k string) bool { return byName[name+"."+k] != nil }
			for _, k := range l.spelling(name+".", m, inSection, byName) {
				if full := name + "." + k; byName[full] == nil {
					l.unknown(full, m[k])
				}
			}
		case name == "target":
			if list, ok := val.([]any); ok {
				for i, e := range list {
					if m, ok := e.(map[string]any); ok {
						l.spelling(fmt.Sprintf("target[%d].", i), m, func(k string) bool { return targetKeys[k] != nil }, targetKeys)
					}
				}
			}
		case byName[name] == nil:
			l.unknown(name, val)
		case byName[name].scope == sSection:
			// "queue.dir" = ... at the top level is dir of [queue]
			// (see lookup); both at once are one key set twice,
			// which TOML does not see: the quoted one would win.
			sec, sub, _ := strings.Cut(name, ".")
			if m, ok := raw[sec].(map[string]any); ok {
				if _, twice := m[sub]; twice {
					l.errorf("%s: %q is set twice: as the top-level key %q and as %s in [%s]; one would silently replace the other: keep one", l.file, name, name, sub, sec)
				}
			}
		}
	}
}

// unknown reports a key no schema entry has: a table, or a value.
func (l *loader) unknown(name string, val any) {
	if list, ok := val.([]any); ok && len(list) > 0 {
		if m, ok := list[0].(map[string]any); ok {
			val = m // [[name]]
		}
	}
	if m, ok := val.(map[string]any); ok {
		// [t.x.y] with nothing else in it: name the whole header.
		for len(m) == 1 {
			k := slices.Collect(maps.Keys(m))[0]
			sub, ok := m[k].(map[string]any)
			if !ok {
				break
			}
			name, m = name+"."+k, sub
		}
		tables := append(slices.Sorted(maps.Keys(sections)), "target")
		hint := ""
		if best := suggest.Closest(strings.SplitN(name, ".", 2)[0], slices.Values(tables)); best != "" {
			hint = fmt.Sprintf(" (did you mean [%s]?)", best)
		}
		l.errorf("%s: unknown table [%s]%s", l.file, name, hint)
		return
	}
	if l.full() {
		l.more++ // no suggestion worked out
	} else {
		l.errorf("%s: unknown key %q%s", l.file, name, didYouMean(name, byName))
	}
}

// spelling checks the keys of one table (prefix names it; known tells
// its keys, suggestions come from from) and returns those spelt as they
// must be, sorted.
func (l *loader) spelling(prefix string, m map[string]any, known func(string) bool, from map[string]*key) []string {
	folded := map[string][]string{}
	for k := range m {
		low := strings.ToLower(k)
		folded[low] = append(folded[low], k)
	}
	var ok []string
	for _, low := range slices.Sorted(maps.Keys(folded)) {
		spelt := folded[low]
		sort.Strings(spelt)
		switch {
		case len(spelt) > 1:
			l.errorf("%s: keys %s fold to the same name: one would silently replace the other; keep one, spelt %q", l.file, quoteJoin(prefix, spelt), prefix+low)
		case spelt[0] != low:
			if known(low) {
				l.errorf("%s: key %q: keys are lower case (did you mean %q?)", l.file, prefix+spelt[0], prefix+low)
			} else {
				name := low
				if sections[strings.TrimSuffix(prefix, ".")] {
					name = prefix + low
				}
				if l.full() {
					l.more++ // no suggestion worked out
				} else {
					l.errorf("%s: unknown key %q: keys are lower case%s", l.file, prefix+spelt[0], didYouMean(name, from))
				}
			}
		default:
			ok = append(ok, low)
		}
	}
	return ok
}

func quoteJoin(prefix string, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", prefix+n)
	}
	return strings.Join(q, " and ")
}

// KnownEnv lists every CACHIX_FILTER_HOOK_* variable the program reads:
// the config file's name and one per key. worker.Spawn sets only
// variables of keys (queue.dir) for the worker it starts.
func KnownEnv() map[string]bool {
	known := map[string]bool{EnvConfig: true}
	for _, k := range keys {
		known[EnvName(k.name)] = true
	}
	return known
}

// checkEnv checks the CACHIX_FILTER_HOOK_* variables as keys are
// checked: a name that is not upper case, two that differ only by case,
// one that names no key (a misspelt CACHIX_FILTER_HOOK_DENNY would
// otherwise deny nothing). An empty variable counts as unset, as it does
// for the keys.
func (l *loader) checkEnv() {
	known := KnownEnv()
	vars := map[string][]string{}
	for _, kv := range os.Environ() {
		name, val, _ := strings.Cut(kv, "=")
		if up := strings.ToUpper(name); strings.HasPrefix(up, EnvPrefix+"_") && val != "" {
			vars[up] = append(vars[up], name)
		}
	}
	for _, up := range slices.Sorted(maps.Keys(vars)) {
		names := vars[up]
		sort.Strings(names)
		switch {
		case len(names) > 1:
			l.errorf("%s: variables that differ only by case: only %s is read; unset the others", strings.Join(names, " and "), up)
		case names[0] != up && known[up]:
			l.errorf("%s: variable names are upper case (did you mean %s?)", names[0], up)
		case !known[names[0]]:
			l.errorf("%s: unknown variable: no key of hook.conf is named so%s", names[0], suggestEnv(up, known))
		}
	}
}

// suggestEnv names the known variable closest to name, if one is close.
func suggestEnv(name string, known map[string]bool) string {
	best := suggest.Closest(name, maps.Keys(known))
	if best == "" {
		return " (see hook.conf.example for the keys; CACHIX_FILTER_HOOK_<KEY>, dots as underscores)"
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// Where names the source of key's effective value, for messages about
// it: the environment variable that set it, the config file, or "" for
// a default.
func (c *Config) Where(key string) string {
	switch s := c.sources[key]; {
	case strings.HasPrefix(s, "env "):
		return s[len("env "):]
	case s == "file":
		return c.File
	}
	return ""
}

func didYouMean(name string, known map[string]*key) string {
	if len(name) > 64 {
		return "" // no key is as long
	}
	if best := suggest.Closest(name, maps.Keys(known)); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}
