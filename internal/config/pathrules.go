package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Rules that look beyond a path's name: its NAR size, whether its
// derivation allows substitutes, whether an upstream cache already has it;
// and the key that signs what a store target receives. Each is a top-level
// key that is the default for every target, and a [[target]] key that
// overrides it.

// Unsubstitutable policies.
const (
	UnsubstSkip = "skip" // leave out a path whose derivation sets allowSubstitutes = false
	UnsubstPush = "push" // push it anyway
)

// pathRules sets t's size, unsubstitutable, upstream, signing keys and
// package_lists from
// its table m, falling back to the top-level values.
func (l *loader) pathRules(c *Config, t *Target, prefix string, m map[string]any, from func(string) string) {
	get := func(key string) (any, string) {
		if prefix != "" {
			if val, ok := m[key]; ok {
				return val, l.file
			}
		}
		// The top-level value, for the default target and as every
		// other target's default.
		val, from := l.get(key)
		switch src := l.sources[key]; {
		case prefix == "" || src != "file":
			t.sources[key] = src
		default:
			t.sources[key] = "top level"
		}
		return val, from
	}
	if val, where := get("max_nar_size"); val != nil {
		// "none", as validate shows no limit, is no limit.
		if s, ok := val.(string); !ok || strings.TrimSpace(s) != "none" {
			t.MaxNarSize = l.asSize(where, prefix+"max_nar_size", val)
		}
	}
	if val, where := get("package_lists"); val != nil {
		if b, ok := l.value(where, prefix+"package_lists", kBool, val); ok {
			t.PackageLists = b.(bool)
		}
	}
	if val, where := get("unsubstitutable"); val != nil {
		t.Unsubstitutable = l.asString(where, prefix+"unsubstitutable", val, "")
	}
	switch t.Unsubstitutable {
	case "":
		t.Unsubstitutable = byName["unsubstitutable"].def.(string)
	case UnsubstSkip, UnsubstPush:
	default:
		l.errorf("%s: %sunsubstitutable: must be \"skip\" or \"push\", got %q", l.whereOf(prefix, m, "unsubstitutable"), prefix, t.Unsubstitutable)
	}
	if val, where := get("upstream"); val != nil {
		var list []string
		if s, ok := val.(string); ok && where != l.file {
			list = strings.Fields(s) // from the environment
		} else {
			list = l.asList(where, prefix+"upstream", val)
		}
		for i, u := range list {
			norm, err := checkUpstream(u)
			if err != nil {
				l.errorf("%s: %supstream[%d]: %v", l.whereOf(prefix, m, "upstream"), prefix, i, err)
				continue
			}
			t.Upstream = append(t.Upstream, norm)
		}
	}
	if val, where := get("secret_key_file"); val != nil {
		t.SecretKeyFile = l.asString(where, prefix+"secret_key_file", val, "")
		switch {
		case t.SecretKeyFile != "" && !filepath.IsAbs(t.SecretKeyFile):
			l.errorf("%s: %ssecret_key_file: must be an absolute path%s", l.whereOf(prefix, m, "secret_key_file"), prefix, notShown)
		case t.Store != "" && t.SecretKeyFile != "" && !strings.Contains(t.Store, "://"):
			l.errorf("%s: %ssecret_key_file: signs for binary cache stores (file://, s3://, https://...), not the local store %q", l.whereOf(prefix, m, "secret_key_file"), prefix, RedactURI(t.Store))
		case t.SecretKeyFile != "" && storeSetsParam(t.Store, "secret-key"):
			// pusher adds secret-key=FILE after the URI's own, and Nix
			// keeps the first: the file would be silently ignored.
			l.errorf("%s: %ssecret_key_file: the target's store sets secret-key= too, and Nix signs with one secret-key= only (the store's), so secret_key_file would be silently ignored; keep one of them (secret-keys=, Nix 2.29 and later, signs with each key besides)", l.whereOf(prefix, m, "secret_key_file"), prefix)
		case t.Cache != "":
			if _, own := m["secret_key_file"]; own {
				l.errorf("%s: %ssecret_key_file: only store targets sign with it; a Cachix target takes cachix.signing_key_file", l.file, prefix)
			}
			// The top-level key is for store targets only.
			t.SecretKeyFile = ""
		}
	}
}

// whereOf names the source of key for a target: the file for a key in a
// [[target]] table, else the top-level key's file or variable.
func (l *loader) whereOf(prefix string, m map[string]any, key string) string {
	if _, own := m[key]; own && prefix != "" {
		return l.file
	}
	return l.fromOf(key)
}

// shownUpstream is an upstream as its errors show it: as RedactURI, and
// with a user alone (or with an empty password) hidden too. An
// upstream takes none, so a user there is likely a token
// (https://TOKEN@host), and these errors go to every build's log.
func shownUpstream(s string) string {
	s = RedactURI(s)
	head, rest, ok := authority(s)
	if !ok {
		return s
	}
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 && !strings.HasSuffix(auth[:at], ":REDACTED") {
		return head + "REDACTED" + rest[at:]
	}
	return s
}

// checkUpstream accepts http(s)://host[/path] and file:///abs/dir, without
// a trailing slash.
func checkUpstream(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("not a URL: %q", shownUpstream(s))
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return "", fmt.Errorf("%q has no host", shownUpstream(s))
		}
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return "", fmt.Errorf("%q: a file:// upstream needs an absolute path (file:///dir)", shownUpstream(s))
		}
	default:
		return "", fmt.Errorf("%q: only http://, https:// and file:// upstreams are supported", shownUpstream(s))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: an upstream takes no ?query or #fragment", shownUpstream(s))
	}
	// The URL is shown in messages, the log and the history ("already
	// in URL"): a password in it would be shown with it.
	if u.User != nil {
		return "", fmt.Errorf("%q: an upstream takes no user or password: name a cache that answers without them", shownUpstream(s))
	}
	return strings.TrimRight(s, "/"), nil
}

// FormatSize renders a byte count as explain and the logs show it:
// "1.3 GiB", "512.0 KiB", "136 B".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
