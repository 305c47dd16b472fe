package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
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
	for _, t := range c.Targets {
		// Where each value came from: the file, a variable, the
		// top-level key a [[target]] inherits, or the default.
		tsrc := func(key string) string {
			s := t.sources[key]
			if s == "" {
				s = "default"
			}
			return "  # " + s
		}
		fmt.Fprintf(&b, "\n[[target]]  # %s\n", t.Label)
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
	if n, ok := v.(int64); ok && k.kind == kSize {
		return strconv.Quote(HumanSize(n))
	}
	return tomlValue(v)
}

// HumanDuration writes d as a person writes it in hook.conf: "10m", not
// "10m0s"; "1h30m", "720h", "2s", "200ms".
func HumanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// HumanSize writes n bytes as hook.conf takes them: "10MiB", "1GiB" when
// that is exact, else the number of bytes ("1500B").
func HumanSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// tomlValue renders a string, bool, number, duration or list of strings
// as hook.conf takes it.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return quoteTOML(x)
	case time.Duration:
		return strconv.Quote(HumanDuration(x))
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
		q[i] = quoteTOML(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quoteTOML writes s as a TOML basic string. strconv.Quote is close, but
// writes \x7f, \a and \v, which TOML does not have: validate's effective
// configuration then did not load again.
func quoteTOML(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || !unicode.IsPrint(r) && r != ' ':
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
