package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Effective renders the configuration in force, as TOML with a comment
// saying where each value came from (file, environment variable or
// default), key by key as the schema lists them. Store URIs have their
// passwords redacted; the token file's path is shown, never its content.
func (c *Config) Effective() string {
	var b strings.Builder
	src := func(key string) string {
		if s := c.sources[key]; s != "" {
			return "  # " + s
		}
		return ""
	}
	if c.File != "" {
		fmt.Fprintf(&b, "# config file: %s\n", c.File)
	} else {
		fmt.Fprintf(&b, "# no config file: environment and defaults only\n")
	}
	for i := range keys {
		if k := &keys[i]; k.scope == sTop {
			fmt.Fprintf(&b, "%s = %s%s\n", k.name, k.render(k.field(c)), src(k.name))
		}
	}
	for i, t := range c.Targets {
		// The default target's keys are top-level keys, which the
		// environment can override: say where each came from.
		tsrc := func(key string) string {
			if t.top {
				return src(key)
			}
			return ""
		}
		fmt.Fprintf(&b, "\n[[target]]  # %d\n", i)
		for j := range keys {
			k := &keys[j]
			if k.targetField != nil && (k.only == nil || k.only(t)) {
				fmt.Fprintf(&b, "%s = %s%s\n", k.name, k.render(k.targetField(t)), tsrc(k.name))
			}
		}
	}
	section := ""
	for i := range keys {
		k := &keys[i]
		if k.scope != sSection {
			continue
		}
		sec, name, _ := strings.Cut(k.name, ".")
		if sec != section {
			fmt.Fprintf(&b, "\n[%s]\n", sec)
			section = sec
		}
		fmt.Fprintf(&b, "%s = %s%s\n", name, k.render(k.field(c)), src(k.name))
	}
	return b.String()
}

// render shows a value (a pointer to it, as field gives it) as TOML.
func (k *key) render(ptr any) string {
	var v any
	switch p := ptr.(type) {
	case *string:
		v = *p
	case *bool:
		v = *p
	case *int:
		v = *p
	case *int64:
		v = *p
	case *time.Duration:
		v = *p
	case *[]string:
		v = *p
	}
	if k.show != nil {
		return k.show(v)
	}
	return tomlValue(v)
}

// tomlValue renders a string, bool, number, duration or list of strings
// as hook.conf takes it.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case time.Duration:
		return strconv.Quote(x.String())
	case []string:
		return quoteList(x)
	case nil:
		return `""`
	}
	return fmt.Sprint(v)
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
