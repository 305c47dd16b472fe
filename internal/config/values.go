package config

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
)

// loader reads typed values and collects every error instead of stopping
// at the first one.
type loader struct {
	raw     map[string]any // the file's keys, their spelling checked by checkKeys
	file    string
	errs    []error
	more    int // problems past maxErrors, counted
	sources map[string]string
	// linear bounds the patterns of all targets matched by a regexp
	// (see filter.MaxLinear).
	linear *filter.Budget
}

// maxErrors bounds the problems reported at once: a hostile file (10,000
// unknown keys) gets a message a terminal and the build log can show.
const maxErrors = 50

func (l *loader) errorf(format string, args ...any) {
	if l.full() {
		l.more++
		return
	}
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

// full reports whether maxErrors problems are known: further ones are
// only counted (and their suggestions not worked out).
func (l *loader) full() bool { return len(l.errs) >= maxErrors }

func (l *loader) bounded() []error {
	if l.more == 0 {
		return l.errs
	}
	return append(l.errs, fmt.Errorf("%s: and %d more problems", l.file, l.more))
}

// get returns the raw value of key, and where it came from: the
// environment variable's name, the file, or "" when unset.
func (l *loader) get(key string) (any, string) {
	env := EnvName(key)
	if s := os.Getenv(env); s != "" {
		l.sources[key] = "env " + env
		return s, env
	}
	if v, ok := lookup(l.raw, key); ok {
		l.sources[key] = "file"
		return v, l.file
	}
	l.sources[key] = "default"
	return nil, ""
}

// fromOf names where key's value came from, for messages: the variable
// that set it, or the file.
func (l *loader) fromOf(key string) string {
	if s := l.sources[key]; strings.HasPrefix(s, "env ") {
		return s[4:]
	}
	return l.file
}

// load sets *ptr (see key.field) to k's value, or its default.
func (l *loader) load(k *key, ptr any) {
	val, from := l.get(k.name)
	def := k.def
	if k.defFn != nil {
		def = k.defFn()
	}
	if val != nil {
		if v, ok := l.value(from, k.name, k.kind, val); ok {
			def = v
		}
	}
	if def == nil {
		return
	}
	switch p := ptr.(type) {
	case *string:
		*p = def.(string)
	case *bool:
		*p = def.(bool)
	case *int:
		*p = def.(int)
	case *int64:
		*p = def.(int64)
	case *time.Duration:
		*p = def.(time.Duration)
	case *[]string:
		*p = def.([]string)
	}
}

// value checks a raw value against kind: a string, int, int64, bool,
// time.Duration or []string, and true; or a reported error and false.
// A value from the environment is a string: numbers, booleans and
// durations are parsed from it, lists are its space-separated words.
func (l *loader) value(from, key string, k kind, val any) (any, bool) {
	env := from != l.file
	switch k {
	case kString:
		if s, ok := val.(string); ok {
			return s, true
		}
	case kBool:
		if b, ok := val.(bool); ok {
			return b, true
		}
		if b, ok := parsedEnv(val, env, func(s string) (any, error) { return strconv.ParseBool(s) }); ok {
			return b, true
		}
	case kInt:
		if n, ok := val.(int64); ok {
			return int(n), true
		}
		if n, ok := parsedEnv(val, env, func(s string) (any, error) { return strconv.Atoi(s) }); ok {
			return n, true
		}
	case kDuration:
		s, ok := val.(string)
		d, err := time.ParseDuration(s)
		if ok && err == nil {
			if d < 0 {
				l.errorf("%s: %s: must not be negative, got %q", from, key, s)
				return nil, false
			}
			return d, true
		}
	case kSize:
		if n, ok := sizeOf(val); ok {
			return n, true
		}
	case kList:
		return l.asList(from, key, val), true
	}
	l.typeError(from, key, k, val)
	return nil, false
}

// parsedEnv parses a value from the environment, where every value is a
// string; false for one from the file, or one parse refuses.
func parsedEnv(val any, env bool, parse func(string) (any, error)) (any, bool) {
	s, ok := val.(string)
	if !ok || !env {
		return nil, false
	}
	v, err := parse(s)
	return v, err == nil
}

func (l *loader) typeError(from, key string, k kind, val any) {
	l.errorf("%s: %s: expected %s, got %s", from, key, kindNames[k], describe(val))
}

func describe(val any) string {
	switch x := val.(type) {
	case string:
		// A store URI written where a string is not expected
		// (upstream = "https://user:password@...") may carry one.
		return fmt.Sprintf("the string %q", RedactURI(x))
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%v (%T)", val, val)
	}
}

func (l *loader) asString(from, key string, val any, def string) string {
	s, ok := val.(string)
	if !ok {
		l.typeError(from, key, kString, val)
		return def
	}
	return s
}

func (l *loader) asSize(from, key string, val any) int64 {
	n, ok := sizeOf(val)
	if !ok {
		l.typeError(from, key, kSize, val)
	}
	return n
}

// sizeOf reads a size: a positive number of bytes, or a string such as
// "10MiB".
func sizeOf(val any) (int64, bool) {
	switch x := val.(type) {
	case int64:
		return x, x > 0
	case string:
		n, err := ParseSize(x)
		return n, err == nil
	}
	return 0, false
}

// asList accepts a TOML array of strings, or (from the environment) a
// string of space-separated words. Of a list's elements that are not
// strings, the first is reported.
func (l *loader) asList(from, key string, val any) []string {
	switch x := val.(type) {
	case nil:
		return nil
	case string:
		if from != l.file {
			return strings.Fields(x)
		}
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		bad := 0
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				if bad++; bad == 1 {
					l.errorf("%s: %s[%d]: expected a string, got %s", from, key, i, describe(e))
				}
				continue
			}
			out = append(out, s)
		}
		if bad > 1 {
			l.errorf("%s: %s: and %d more elements that are not strings", from, key, bad-1)
		}
		return out
	}
	l.typeError(from, key, kList, val)
	return nil
}

// ParseSize reads "10MiB", "512KiB", "1GB" or a plain number of bytes.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n > math.MaxInt64/mult {
		// Multiplied, it would wrap round to another size, even a
		// small one (2^34+1 GiB is 1 GiB).
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// lookup finds a dotted key in the decoded file: "queue.dir" is dir in
// [queue], or a top-level key spelt "queue.dir" (TOML allows quoted keys
// with dots), whichever part of the name a table holds.
func lookup(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for i := 0; i < len(key); i++ {
		if key[i] != '.' {
			continue
		}
		if sub, ok := m[key[:i]].(map[string]any); ok {
			if v, ok := lookup(sub, key[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}
