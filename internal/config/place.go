package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Where a problem is, in the words a person looks for it: the file and
// line of the key (or the variable that set it), and the target as
// validate shows it. The loader words its errors "FROM: KEY: what", KEY
// as a path ("queue.dir", "target[1].allow[0]"); they are placed only
// when the config fails, so that a good one costs nothing more.

// keyPath matches a key path as the loader writes one.
var keyPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*$`) })

// placed returns the loader's errors with the line of each key in the
// file (FILE:LINE) and each [[target]] named as validate names it.
func (l *loader) placed(data []byte, raw map[string]any) []error {
	errs := l.bounded()
	var lines map[string]int
	if data != nil {
		lines = keyLines(data)
	}
	labels := targetLabels(raw)
	out := make([]error, len(errs))
	for i, err := range errs {
		out[i] = errors.New(l.place(err.Error(), lines, labels))
	}
	return out
}

func (l *loader) place(msg string, lines map[string]int, labels []string) string {
	from, rest, ok := strings.Cut(msg, ": ")
	if !ok {
		return msg
	}
	at := func(path string) string {
		if from == l.file {
			if n := lineOf(lines, path); n > 0 {
				return fmt.Sprintf("%s:%d", from, n)
			}
		}
		return from
	}
	// "FROM: KEY: what"
	if path, text, ok := strings.Cut(rest, ": "); ok && keyPath().MatchString(path) {
		return at(path) + ": " + labelPath(path, labels) + ": " + text
	}
	// A key named in the text: `unknown key "target[1].alow"`, `unknown
	// table [queu]`.
	m := quotedKey().FindStringSubmatch(rest)
	if m == nil {
		return msg
	}
	path := m[1] + m[2]
	var i int
	if _, err := fmt.Sscanf(path, "target[%d].", &i); err == nil && i >= 0 && i < len(labels) {
		prefix := fmt.Sprintf("target[%d].", i)
		return at(path) + ": " + labels[i] + ": " + strings.ReplaceAll(strings.ReplaceAll(rest, `"`+prefix, `"`), "["+prefix, "[")
	}
	return at(path) + ": " + rest
}

// quotedKey finds a key named in a message: "KEY" or [TABLE].
var quotedKey = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`"([A-Za-z0-9_\-]+(?:\[\d+\])?(?:\.[A-Za-z0-9_\-]+)*)"|\[([A-Za-z0-9_\-.]+)\]`)
})

// lineOf is the line of path, or of the nearest key or table holding it
// ("target[1].allow[0]": allow's line in the second [[target]]); 0 when
// the file does not say it (a default derived from another key).
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if n, ok := lines[path]; ok {
			return n
		}
		if i := strings.LastIndexAny(path, ".["); i > 0 {
			path = path[:i]
		} else {
			break
		}
	}
	return 0
}

// labelPath names a [[target]] in path as validate does:
// "target[1].allow[0]" is `[[target]] #2: allow[0]`, or `target "work":
// allow[0]` when that table sets its name.
func labelPath(path string, labels []string) string {
	var i int
	if _, err := fmt.Sscanf(path, "target[%d]", &i); err != nil || i < 0 || i >= len(labels) {
		return path
	}
	_, rest, _ := strings.Cut(path, "]")
	if rest = strings.TrimPrefix(rest, "."); rest == "" {
		return labels[i]
	}
	return labels[i] + ": " + rest
}

// targetLabels are the [[target]] tables' labels, in the file's order:
// `target "NAME"` when a table sets its name, else `[[target]] #N`,
// counted from 1 as a person counts the tables.
func targetLabels(raw map[string]any) []string {
	var labels []string
	add := func(m any) {
		t, _ := m.(map[string]any)
		if name, _ := t["name"].(string); name != "" {
			labels = append(labels, fmt.Sprintf("target %q", name))
		} else {
			labels = append(labels, fmt.Sprintf("[[target]] #%d", len(labels)+1))
		}
	}
	switch x := raw["target"].(type) {
	case []map[string]any:
		for _, m := range x {
			add(m)
		}
	case []any:
		for _, m := range x {
			add(m)
		}
	}
	return labels
}

// Place names where key's value was set, for messages about it:
// "FILE:LINE" when the config file sets it, the variable that did, or ""
// for a default. The line is read from the file again: only the message
// depends on it. It is read as Load reads it (readChecked): a FIFO there
// would block a plain open until someone wrote it.
func (c *Config) Place(key string) string {
	where := c.Where(key)
	if where == "" || where != c.File {
		return where
	}
	data, err := readChecked(c.File)
	if err != nil {
		return where
	}
	if n := lineOf(keyLines(data), key); n > 0 {
		return fmt.Sprintf("%s:%d", c.File, n)
	}
	return where
}

// StorePlace names where t's store was set, as the loader's errors do:
// "FILE:LINE: [[target]] #2: store", or the variable that set the top
// level's; for messages about the store found after Load (its
// directories, its socket).
func (c *Config) StorePlace(t *Target) string {
	if t.top {
		where := c.Place("store")
		if where == "" {
			where = "default"
		}
		return where + ": " + t.Label + ": store"
	}
	i := slices.Index(c.Targets, t)
	if len(c.Targets) > 0 && c.Targets[0].top {
		i--
	}
	where := c.File
	if data, err := readChecked(c.File); err == nil && i >= 0 {
		if n := lineOf(keyLines(data), fmt.Sprintf("target[%d].store", i)); n > 0 {
			where = fmt.Sprintf("%s:%d", c.File, n)
		}
	}
	return where + ": " + t.Label + ": store"
}

// QueueDirOf is the queue directory of the configuration flagPath names,
// found even when that configuration does not load (status shows the
// queue of a broken config: it is when one most wants to see it):
// CACHIX_FILTER_HOOK_QUEUE_DIR, else the file's queue.dir when the file
// passes the trust rule and is TOML, else the default. The key is found
// as Load finds it (decode, lookup): a decoder into a struct folds case,
// reading a [QUEUE] Load refuses, and misses "queue.dir" = ..., which
// Load reads.
func QueueDirOf(flagPath string) string {
	if d := os.Getenv(EnvName("queue.dir")); filepath.IsAbs(d) {
		return d
	}
	if file, err := Find(flagPath); err == nil && file != "" {
		if data, err := readChecked(file); err == nil {
			if raw, err := decode(file, data); err == nil {
				d, _ := lookup(raw, "queue.dir")
				if s, ok := d.(string); ok && filepath.IsAbs(s) {
					return s
				}
			}
		}
	}
	return DefaultQueueDir()
}
