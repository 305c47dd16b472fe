package config

import (
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"
)

// KnownEnv lists every CACHIX_FILTER_HOOK_* variable the program reads:
// the config file's name and one per key. worker.Spawn sets only
// variables of keys (queue.dir) for the worker it starts.
func KnownEnv() map[string]bool {
	known := map[string]bool{EnvConfig: true}
	for key := range schema {
		known[EnvName(key)] = true
	}
	return known
}

// unknownEnv reports every CACHIX_FILTER_HOOK_* variable that names no
// key: a misspelt CACHIX_FILTER_HOOK_DENNY would otherwise deny nothing,
// silently, as a misspelt key in the file would. An empty variable counts
// as unset, as it does for the keys.
func (l *loader) unknownEnv() {
	known := KnownEnv()
	var bad []string
	for _, kv := range os.Environ() {
		name, val, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && val != "" && !known[name] {
			bad = append(bad, name)
		}
	}
	sort.Strings(bad)
	for _, name := range bad {
		l.errorf("%s: unknown variable: no key of hook.conf is named so%s", name, suggestEnv(name, known))
	}
}

// suggestEnv names the known variable closest to name, if one is close.
func suggestEnv(name string, known map[string]bool) string {
	best := closest(name, maps.Keys(known))
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
