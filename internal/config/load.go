package config

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/viper"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// Defaults of the optional keys, as documented in hook.conf.example.
const (
	DefaultCachixBin = "cachix"
	// DefaultBatch is large: a backlog (a NixOS closure after a switch)
	// goes up in few pusher calls, each bounded by argv size too (see
	// pusher.ArgBudget); a burst of builds is gathered by the worker's
	// timing, not by this bound.
	DefaultBatch = 10000
	// DefaultRememberPushed is how long a path recorded as pushed is
	// left out without asking the cache: Cachix garbage-collects by last
	// access, so a record does not count forever.
	DefaultRememberPushed = 30 * 24 * time.Hour
	DefaultRetryInitial   = 2 * time.Second
	DefaultRetryMax       = 10 * time.Minute
	DefaultLinger         = 3 * time.Second
	DefaultPushTimeout    = time.Hour
	DefaultLogLevel       = "info"
	DefaultLogMaxSize     = 10 << 20
)

type kind int

const (
	kString kind = iota
	kBool
	kInt
	kDuration
	kSize
	kList
	kTargets
)

var kindNames = map[kind]string{
	kString: "a string", kBool: "a boolean", kInt: "an integer",
	kDuration: `a duration such as "2s" or "10m"`, kSize: `a size such as "10MiB"`,
	kList: "a list of strings", kTargets: "an array of tables ([[target]])",
}

// schema lists every key hook.conf knows. Keys not in it are errors: a
// misspelt "alow" would otherwise select nothing, silently.
var schema = map[string]kind{
	"name": kString, "cache": kString, "store": kString,
	"allow": kList, "deny": kList, "closure_deny": kString,
	"strict": kBool, "target": kTargets,
	"max_nar_size": kSize, "unsubstitutable": kString, "upstream": kList,
	"upstream_timeout": kDuration, "upstream_deadline": kDuration, "secret_key_file": kString,
	"cachix.bin": kString, "cachix.auth_token_file": kString, "cachix.push_args": kList,
	"cachix.signing_key_file": kString,
	"nix.bin_dir":             kString,
	"queue.dir":               kString, "queue.batch": kInt,
	"queue.retry_initial": kDuration, "queue.retry_max": kDuration, "queue.linger": kDuration, "queue.push_timeout": kDuration,
	"queue.remember_pushed": kDuration,
	"log.file":              kString, "log.level": kString, "log.max_size": kSize,
}

// targetKeys are the keys a [[target]] table may have.
var targetKeys = map[string]kind{
	"name": kString, "cache": kString, "store": kString,
	"allow": kList, "deny": kList, "closure_deny": kString,
	"max_nar_size": kSize, "unsubstitutable": kString, "upstream": kList,
	"secret_key_file": kString,
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Load finds the config file (see Find), reads it and validates the whole
// configuration. The error lists every problem found, each naming the file
// or environment variable and the key.
func Load(flagPath string) (*Config, error) {
	file, err := Find(flagPath)
	if err != nil {
		return nil, err
	}
	var data []byte
	if file != "" {
		if data, err = readChecked(file); err != nil {
			return nil, err
		}
	}
	return parse(file, data)
}

// MaxConfigSize is the largest config file read. A bigger one is an
// error, never a cut: the part cut off could be a deny list.
const MaxConfigSize = 1 << 20

// readChecked refuses a file that fails the trust rule (see package
// trust): the file names programs that run as root. It is read from the
// very descriptor the rule was checked on (trust.Open), so it cannot be
// swapped in between; it must be a regular file no larger than
// MaxConfigSize.
func readChecked(file string) ([]byte, error) {
	f, err := trust.Open(file, trust.File)
	if err != nil {
		if trust.IsRefusal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	// Whole or not at all: a cut could drop a deny list.
	data, err := safeopen.ReadAll(f, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", file, err)
	}
	return data, nil
}

func parse(file string, data []byte) (*Config, error) {
	v := viper.New()
	v.SetConfigType("toml")
	where := file
	if file != "" {
		// Before the parser, which builds every level of nesting.
		if err := checkNesting(file, data); err != nil {
			return nil, err
		}
		v.SetConfigFile(file)
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	} else {
		where = "environment"
	}
	// Environment overrides are applied by loader.get, which also
	// records where each value came from; viper only reads the file.
	l := &loader{v: v, file: where, sources: map[string]string{}}
	c := &Config{File: file, sources: l.sources}
	l.unknownKeys()
	l.unknownEnv()

	c.Strict = l.boolean("strict", false)
	c.Cachix = Cachix{
		Bin:            l.str("cachix.bin", DefaultCachixBin),
		AuthTokenFile:  l.str("cachix.auth_token_file", ""),
		PushArgs:       l.list("cachix.push_args"),
		SigningKeyFile: l.str("cachix.signing_key_file", ""),
	}
	c.UpstreamTimeout = l.duration("upstream_timeout", DefaultUpstreamTimeout)
	c.UpstreamDeadline = l.duration("upstream_deadline", DefaultUpstreamDeadline)
	c.Nix = Nix{BinDir: l.str("nix.bin_dir", "")}
	c.Queue = Queue{
		Dir:            l.str("queue.dir", DefaultQueueDir()),
		Batch:          l.integer("queue.batch", DefaultBatch),
		RetryInitial:   l.duration("queue.retry_initial", DefaultRetryInitial),
		RetryMax:       l.duration("queue.retry_max", DefaultRetryMax),
		Linger:         l.duration("queue.linger", DefaultLinger),
		PushTimeout:    l.duration("queue.push_timeout", DefaultPushTimeout),
		RememberPushed: l.duration("queue.remember_pushed", DefaultRememberPushed),
	}
	c.Log = Log{
		File:    l.str("log.file", ""),
		Level:   l.str("log.level", DefaultLogLevel),
		MaxSize: l.size("log.max_size", DefaultLogMaxSize),
	}
	if c.Log.File == "" {
		c.Log.File = filepath.Join(c.Queue.Dir, "worker.log")
	}
	l.checkValues(c)
	l.targets(c)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return c, nil
}

// loader reads typed values and collects every error instead of stopping
// at the first one.
type loader struct {
	v       *viper.Viper
	file    string
	errs    []error
	sources map[string]string
}

func (l *loader) errorf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

func (l *loader) unknownKeys() {
	keys := l.v.AllKeys()
	sort.Strings(keys)
	for _, key := range keys {
		if _, ok := schema[key]; ok {
			continue
		}
		if i := strings.IndexByte(key, '.'); i < 0 && isSection(key) {
			l.errorf("%s: %s: expected a table ([%s])", l.file, key, key)
			continue
		}
		l.errorf("%s: unknown key %q%s", l.file, key, suggest(key, schema))
	}
}

func isSection(key string) bool {
	return key == "cachix" || key == "nix" || key == "queue" || key == "log"
}

func suggest(key string, known map[string]kind) string {
	if best := closest(key, maps.Keys(known)); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// closest is the name among known nearest to name, within an edit
// distance of 3, for suggesting what a typo meant ("" when none is).
func closest(name string, known iter.Seq[string]) string {
	best, bestD := "", 4
	for k := range known {
		if d := distance(name, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance, for suggesting the key a typo meant.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// get returns the raw value of key, and where it came from: the
// environment variable's name, the file, or "" when unset.
func (l *loader) get(key string) (any, string) {
	env := EnvName(key)
	if s := os.Getenv(env); s != "" {
		l.sources[key] = "env " + env
		return s, env
	}
	if l.v.InConfig(key) {
		l.sources[key] = "file"
		return l.v.Get(key), l.file
	}
	l.sources[key] = "default"
	return nil, ""
}

func (l *loader) str(key, def string) string {
	val, from := l.get(key)
	if val == nil {
		return def
	}
	return l.asString(from, key, val, def)
}

func (l *loader) asString(from, key string, val any, def string) string {
	s, ok := val.(string)
	if !ok {
		l.typeError(from, key, kString, val)
		return def
	}
	return s
}

func (l *loader) typeError(from, key string, k kind, val any) {
	l.errorf("%s: %s: expected %s, got %s", from, key, kindNames[k], describe(val))
}

func describe(val any) string {
	switch val.(type) {
	case string:
		return fmt.Sprintf("the string %q", val)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%v (%T)", val, val)
	}
}

func (l *loader) boolean(key string, def bool) bool {
	val, from := l.get(key)
	switch x := val.(type) {
	case nil:
		return def
	case bool:
		return x
	case string:
		if from != l.file {
			if b, err := strconv.ParseBool(x); err == nil {
				return b
			}
		}
	}
	l.typeError(from, key, kBool, val)
	return def
}

func (l *loader) integer(key string, def int) int {
	val, from := l.get(key)
	switch x := val.(type) {
	case nil:
		return def
	case int64:
		return int(x)
	case int:
		return x
	case string:
		if from != l.file {
			if n, err := strconv.Atoi(x); err == nil {
				return n
			}
		}
	}
	l.typeError(from, key, kInt, val)
	return def
}

func (l *loader) duration(key string, def time.Duration) time.Duration {
	val, from := l.get(key)
	if val == nil {
		return def
	}
	s, ok := val.(string)
	d, err := time.ParseDuration(s)
	if !ok || err != nil {
		l.typeError(from, key, kDuration, val)
		return def
	}
	if d < 0 {
		l.errorf("%s: %s: must not be negative, got %q", from, key, s)
		return def
	}
	return d
}

func (l *loader) size(key string, def int64) int64 {
	val, from := l.get(key)
	switch x := val.(type) {
	case nil:
		return def
	case int64:
		if x > 0 {
			return x
		}
	case string:
		if n, err := ParseSize(x); err == nil {
			return n
		}
	}
	l.typeError(from, key, kSize, val)
	return def
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
	return n * mult, nil
}

func (l *loader) list(key string) []string {
	val, from := l.get(key)
	return l.asList(from, key, val)
}

// asList accepts a TOML array of strings, or (from the environment) a
// string of space-separated words.
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
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				l.errorf("%s: %s[%d]: expected a string, got %s", from, key, i, describe(e))
				continue
			}
			out = append(out, s)
		}
		return out
	}
	l.typeError(from, key, kList, val)
	return nil
}

var cacheName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (l *loader) checkValues(c *Config) {
	if c.Queue.Batch <= 0 {
		l.errorf("%s: queue.batch: must be at least 1, got %d", l.fromOf("queue.batch"), c.Queue.Batch)
	}
	if c.Queue.RetryInitial <= 0 {
		l.errorf("%s: queue.retry_initial: must be positive", l.fromOf("queue.retry_initial"))
	}
	if c.Queue.RetryMax < c.Queue.RetryInitial {
		l.errorf("%s: queue.retry_max (%s) is shorter than queue.retry_initial (%s)", l.fromOf("queue.retry_max"), c.Queue.RetryMax, c.Queue.RetryInitial)
	}
	if c.UpstreamDeadline <= 0 {
		l.errorf("%s: upstream_deadline: must be positive (every round of upstream questions ends)", l.fromOf("upstream_deadline"))
	}
	if c.Queue.PushTimeout <= 0 {
		l.errorf("%s: queue.push_timeout: must be positive", l.fromOf("queue.push_timeout"))
	}
	if !filepath.IsAbs(c.Queue.Dir) {
		l.errorf("%s: queue.dir: must be an absolute path, got %q", l.fromOf("queue.dir"), c.Queue.Dir)
	}
	if !filepath.IsAbs(c.Log.File) {
		l.errorf("%s: log.file: must be an absolute path, got %q", l.fromOf("log.file"), c.Log.File)
	}
	if _, err := logrus.ParseLevel(c.Log.Level); err != nil {
		l.errorf("%s: log.level: unknown level %q (panic, fatal, error, warn, info, debug, trace)", l.fromOf("log.level"), c.Log.Level)
	}
	if c.Cachix.Bin == "" || !filepath.IsAbs(c.Cachix.Bin) && strings.ContainsRune(c.Cachix.Bin, '/') {
		l.errorf("%s: cachix.bin: must be a command name or an absolute path, got %q", l.fromOf("cachix.bin"), c.Cachix.Bin)
	}
	if c.Cachix.AuthTokenFile != "" && !filepath.IsAbs(c.Cachix.AuthTokenFile) {
		l.errorf("%s: cachix.auth_token_file: must be an absolute path, got %q", l.fromOf("cachix.auth_token_file"), c.Cachix.AuthTokenFile)
	}
	if c.Nix.BinDir != "" && !filepath.IsAbs(c.Nix.BinDir) {
		l.errorf("%s: nix.bin_dir: must be an absolute path, got %q", l.fromOf("nix.bin_dir"), c.Nix.BinDir)
	}
}

func (l *loader) fromOf(key string) string {
	if s := l.sources[key]; strings.HasPrefix(s, "env ") {
		return s[4:]
	}
	return l.file
}

// targets builds the default target from the top-level keys and one more
// per [[target]] table.
func (l *loader) targets(c *Config) {
	top := map[string]any{}
	for key := range targetKeys {
		if inherited[key] {
			continue // defaults for every target, see pathRules
		}
		if val, from := l.get(key); val != nil {
			top[key] = val
			if from != l.file {
				// Values from the environment are strings; lists
				// are space-separated words.
				if targetKeys[key] == kList {
					top[key] = strings.Fields(val.(string))
				}
			}
		}
	}
	if len(top) > 0 {
		t := l.target(c, "", top)
		t.top = true
		c.Targets = append(c.Targets, t)
	}
	raw, _ := l.get("target")
	var tables []map[string]any
	switch x := raw.(type) {
	case nil:
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
		c.Targets = append(c.Targets, l.target(c, fmt.Sprintf("target[%d].", i), m))
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
		if t.Rules != nil && t.Rules.Empty() {
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
			l.errorf("%s: unknown key %q%s", l.file, prefix+key, suggest(key, targetKeys))
		}
	}
	str := func(key string) string {
		if val, ok := m[key]; ok {
			return l.asString(from(key), prefix+key, val, "")
		}
		return ""
	}
	t := &Target{
		Name:        str("name"),
		Cache:       str("cache"),
		Store:       str("store"),
		Allow:       l.asList(l.file, prefix+"allow", m["allow"]),
		Deny:        l.asList(l.file, prefix+"deny", m["deny"]),
		ClosureDeny: str("closure_deny"),
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
	case t.Cache != "" && !cacheName.MatchString(t.Cache):
		l.errorf("%s: %scache: %q is not a cache name", from("cache"), prefix, t.Cache)
	case t.Store != "" && !validStore(t.Store):
		// Not quoted: a URI that does not parse may hold a password.
		l.errorf("%s: %sstore: not a Nix store URI (scheme://... or an absolute path)", from("store"), prefix)
	case t.Store != "" && storeCredentials(t.Store) != "":
		// nix copy gets the URI in argv, which any user can read.
		l.errorf("%s: %sstore: %q carries %s, which would be in nix copy's command line (readable by every user in /proc) and in logs; %s",
			from("store"), prefix, RedactURI(t.Store), storeCredentials(t.Store), credentialsFix(t.Store))
	}
	if t.Name == "" {
		t.Name = t.Cache
		if t.Name == "" {
			t.Name = RedactURI(t.Store)
		}
	}
	switch t.ClosureDeny {
	case "":
		// Deny wins by default, inside closures too (see package
		// policy).
		t.ClosureDeny = ClosureSkip
	case ClosurePush, ClosureSkip:
	default:
		l.errorf("%s: %sclosure_deny: must be \"push\" or \"skip\", got %q", from("closure_deny"), prefix, t.ClosureDeny)
	}
	rules, err := filter.Compile(t.Allow, t.Deny)
	if err != nil {
		var pe *filter.PatternError
		for _, e := range unwrapAll(err) {
			if errors.As(e, &pe) {
				l.errorf("%s: %s%s[%d]: bad pattern %q: %s at offset %d\n    %s\n    %s^", from(pe.List), prefix, pe.List, pe.Index, pe.Pattern, pe.Reason, pe.Offset, pe.Pattern, strings.Repeat(" ", pe.Offset))
			} else {
				l.errorf("%s: %s%v", l.file, prefix, e)
			}
		}
	}
	t.Rules = rules
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

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func validStore(s string) bool {
	if strings.HasPrefix(s, "/") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && !strings.HasPrefix(s, "-")
}
