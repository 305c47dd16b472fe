package config

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

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

// LoadElsewhere is Load of a config made for another machine (validate
// --config-only, which the modules run on the file they build, in Nix's
// sandbox): the file is read without the trust rule, since who owns it
// here says nothing of it there (in the sandbox, / and the store are
// root's, a uid it does not map: owned by nobody), and nothing it names is
// run or read. It is still a regular file, read whole or not at all.
func LoadElsewhere(flagPath string) (*Config, error) {
	file, err := Find(flagPath)
	if err != nil {
		return nil, err
	}
	var data []byte
	if file != "" {
		if data, err = safeopen.ReadFile(file, safeopen.Options{MaxSize: MaxConfigSize}); err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
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
	// Whole or not at all: a cut could drop a deny list.
	return readTrusted(file, trust.File, "config", MaxConfigSize)
}

// decode parses hook.conf as TOML, keys spelt as written, once the
// lexer found it bounded in depth (the parser builds every level). A
// syntax error names the line and column, and shows them.
func decode(file string, data []byte) (map[string]any, error) {
	if err := checkText(file, data); err != nil {
		return nil, err
	}
	if err := checkNesting(file, data); err != nil {
		return nil, err
	}
	raw := map[string]any{}
	if err := toml.Unmarshal(data, &raw); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s:%d:%d: %s\n%s", file, row, col, redactExcerpt(strings.TrimPrefix(de.Error(), "toml: ")), indent(redactExcerpt(de.String())))
		}
		// A key or table set twice: the error has no position.
		if m := repeated().FindStringSubmatch(err.Error()); m != nil {
			if n := repeatLine(data, m[2], m[1] == "table" || m[3] != "is already defined"); n > 0 {
				return nil, fmt.Errorf("%s:%d: %s", file, n, strings.TrimPrefix(err.Error(), "toml: "))
			}
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return raw, nil
}

// checkText refuses, in words a person can act on, what makes a file no
// TOML before the parser says "invalid UTF-8" or "invalid character at
// start of key: ï": a byte order mark (some Windows editors write one),
// UTF-16, a NUL byte (a binary file, or a copy gone wrong).
func checkText(file string, data []byte) error {
	switch {
	case bytes.HasPrefix(data, []byte("\xef\xbb\xbf")):
		return fmt.Errorf("%s:1:1: the file starts with a byte order mark (EF BB BF), which TOML does not allow: save it as UTF-8 without one (vim: :set nobomb | w)", file)
	case bytes.HasPrefix(data, []byte("\xff\xfe")), bytes.HasPrefix(data, []byte("\xfe\xff")):
		return fmt.Errorf("%s:1:1: the file is UTF-16 text: TOML is UTF-8; convert it (iconv -f UTF-16 -t UTF-8)", file)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		line := 1 + bytes.Count(data[:i], []byte("\n"))
		col := i - bytes.LastIndexByte(data[:i], '\n')
		return fmt.Errorf("%s:%d:%d: a NUL byte, which no text holds: is it a binary file, or a copy gone wrong? hook.conf is UTF-8 text", file, line, col)
	}
	return nil
}

// repeated matches the parser's words for a key or table set twice, or
// a [table] over a key: (key|table) NAME (what).
var repeated = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^toml: (key|table) (.+) (is already defined|already exists|should be a table, not a .*)$`)
})

// redactExcerpt hides the secrets on the lines the parser shows: the
// message reaches the log of every build, and a line next to a syntax
// error may hold one, which Load would refuse without showing it. Hidden
// are the credentials of any URI, word by word (see RedactURI); the rest
// of a line from a key named like a secret (token = ..., password=...),
// but for one naming a file (auth_token_file: a path is no secret); and
// what looks like a token or key wherever it is (a Cachix token is a JWT,
// a Nix signing key 64 bytes of base64), in case it was written unquoted
// or under another key.
func redactExcerpt(s string) string {
	lines := strings.Split(word().ReplaceAllStringFunc(s, RedactURI), "\n")
	for i, line := range lines {
		for _, m := range assignment().FindAllStringSubmatchIndex(line, -1) {
			key := strings.ToLower(strings.Trim(line[m[2]:m[3]], `"'`))
			value := strings.TrimLeft(line[m[1]:], " \t")
			// A URI's parameter RedactURI hid already keeps the rest.
			if secretKeyName(key) && !strings.HasSuffix(key, "file") && !strings.HasPrefix(value, "REDACTED") {
				line = line[:len(line)-len(value)] + "REDACTED"
				break
			}
		}
		lines[i] = secretLooking().ReplaceAllString(line, "REDACTED")
	}
	return strings.Join(lines, "\n")
}

// secretKeyName reports whether a key's name says it holds a secret.
func secretKeyName(key string) bool {
	for _, w := range secretWords {
		if strings.Contains(key, w) {
			return true
		}
	}
	return strings.Contains(key, "key") // signing_key, private_key
}

var (
	word = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\S+`) })
	// assignment matches KEY = (or KEY=), KEY bare, quoted or dotted.
	assignment = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`([A-Za-z0-9_.\-"']+)\s*=`) })
	// secretLooking matches a JWT (a Cachix token: base64url of "{",
	// dots between its parts) and 64 bytes of base64 (a Nix secret key).
	secretLooking = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*|[A-Za-z0-9+/]{86}==`)
	})
)

// indent shows the parser's excerpt of the file under the message.
func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

func parse(file string, data []byte) (*Config, error) {
	where := "environment"
	var raw map[string]any
	if file != "" {
		where = file
		var err error
		if raw, err = decode(file, data); err != nil {
			return nil, err
		}
	}
	// Environment overrides are applied by loader.get, which also
	// records where each value came from; the file's keys are looked up
	// as written, once checkKeys has refused every other spelling.
	l := &loader{raw: raw, file: where, sources: map[string]string{}, linear: filter.NewBudget()}
	l.checkKeys(raw)
	l.checkEnv()
	c := &Config{File: file, sources: l.sources, Host: hostName()}
	for i := range keys {
		if k := &keys[i]; k.field != nil {
			l.load(k, k.field(c))
		}
	}
	if c.Log.File == "" {
		c.Log.File = filepath.Join(c.Queue.Dir, "worker.log")
	}
	l.checkValues(c)
	l.targets(c, targetLabels(raw))
	if len(l.errs) > 0 {
		return nil, errors.Join(l.placed(data, raw)...)
	}
	return c, nil
}

// Compiled on first use: package init runs on every start, the hook's too.
var cacheName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) })

// notShown ends the message about a secret's file that is not an
// absolute path, in place of the value: the commonest mistake there is
// the secret itself (auth_token_file = "eyJ..."), and the message is in
// every build's log.
const notShown = " of the file holding the secret (the value is not shown: it may be the secret itself)"

func (l *loader) checkValues(c *Config) {
	if c.Queue.Batch <= 0 {
		l.errorf("%s: queue.batch: must be at least 1, got %d", l.fromOf("queue.batch"), c.Queue.Batch)
	}
	if c.Queue.DroppedMax < 0 {
		l.errorf("%s: queue.dropped_max: must be 0 (no limit) or more, got %d", l.fromOf("queue.dropped_max"), c.Queue.DroppedMax)
	}
	if c.Queue.DroppedMaxAge < 0 {
		l.errorf("%s: queue.dropped_max_age: must be 0 (no limit) or more", l.fromOf("queue.dropped_max_age"))
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
	if c.UpstreamTimeout <= 0 {
		// 0 would be an HTTP client without a bound on a request.
		l.errorf("%s: upstream_timeout: must be positive (every request to an upstream ends)", l.fromOf("upstream_timeout"))
	}
	if c.Queue.PushTimeout <= 0 {
		l.errorf("%s: queue.push_timeout: must be positive", l.fromOf("queue.push_timeout"))
	}
	if !filepath.IsAbs(c.Queue.Dir) {
		l.errorf("%s: queue.dir: must be an absolute path, got %q", l.fromOf("queue.dir"), c.Queue.Dir)
	}
	// A log.file made from queue.dir is wrong when queue.dir is, which
	// is said once, on the key that was set.
	if !filepath.IsAbs(c.Log.File) && l.sources["log.file"] != "default" {
		l.errorf("%s: log.file: must be an absolute path, got %q", l.fromOf("log.file"), c.Log.File)
	}
	if f := c.Metrics.File; f != "" && (!filepath.IsAbs(f) || strings.HasSuffix(f, "/")) {
		l.errorf("%s: metrics.file: must be an absolute file path, got %q", l.fromOf("metrics.file"), f)
	}
	if _, err := logrus.ParseLevel(c.Log.Level); err != nil {
		l.errorf("%s: log.level: unknown level %q (panic, fatal, error, warn, info, debug, trace)", l.fromOf("log.level"), c.Log.Level)
	}
	if c.Cachix.Bin == "" || !filepath.IsAbs(c.Cachix.Bin) && strings.ContainsRune(c.Cachix.Bin, '/') {
		l.errorf("%s: cachix.bin: must be a command name or an absolute path, got %q", l.fromOf("cachix.bin"), c.Cachix.Bin)
	}
	if c.Cachix.AuthTokenFile != "" && !filepath.IsAbs(c.Cachix.AuthTokenFile) {
		l.errorf("%s: cachix.auth_token_file: must be an absolute path%s", l.fromOf("cachix.auth_token_file"), notShown)
	}
	if c.Cachix.SigningKeyFile != "" && !filepath.IsAbs(c.Cachix.SigningKeyFile) {
		// Relative, it would be read from validate's directory and
		// from the worker's, /.
		l.errorf("%s: cachix.signing_key_file: must be an absolute path%s", l.fromOf("cachix.signing_key_file"), notShown)
	}
	if c.Nix.BinDir != "" && !filepath.IsAbs(c.Nix.BinDir) {
		l.errorf("%s: nix.bin_dir: must be an absolute path, got %q", l.fromOf("nix.bin_dir"), c.Nix.BinDir)
	}
}
