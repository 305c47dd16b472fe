package pusher

import (
	"net/url"
	"os"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// signingStore adds secret-key=FILE to a store URI, so that nix copy signs
// each path as it writes it and the cache's narinfo carries Sig:. The key
// is checked first (root-owned, private, a Nix secret key); Nix reads it
// by its path, so the key's content is never in argv.
func signingStore(store, keyFile string) (string, error) {
	// A key the URI names itself signs all the same: the same check.
	if err := config.CheckStoreKeys(store); err != nil {
		return "", err
	}
	if keyFile == "" {
		return store, nil
	}
	if _, err := config.ReadSecretKey(keyFile); err != nil {
		return "", err
	}
	// Before a '#': Nix reads no parameter in the fragment, and would
	// copy unsigned.
	head, frag, hasFrag := strings.Cut(store, "#")
	sep := "?"
	if strings.Contains(head, "?") {
		sep = "&"
	}
	// Nix decodes %XX alone: QueryEscape's '+' for a space would name
	// another file.
	out := head + sep + "secret-key=" + strings.ReplaceAll(url.QueryEscape(keyFile), "+", "%20")
	if hasFrag {
		out += "#" + frag
	}
	return out, nil
}

// withSigningKey gives cachix the signing key's content as
// CACHIX_SIGNING_KEY in its environment, never argv: for caches whose
// paths the user signs. It returns the key's secret, for redaction: the
// base64 after "name:", which cachix may print on its own (it takes the
// key with or without the name); redacting it covers the whole key too,
// of which it is a part. Without a key file, the secret is that of a key
// cachix inherits, which it would sign with all the same.
func withSigningKey(env []string, keyFile string) ([]string, string, error) {
	if keyFile == "" {
		// Trimmed as the token is (see cachixPusher.run).
		k := strings.TrimSpace(os.Getenv("CACHIX_SIGNING_KEY"))
		return env, k[strings.LastIndex(k, ":")+1:], nil
	}
	key, err := config.ReadSecretKey(keyFile)
	if err != nil {
		return nil, "", err
	}
	// ReadSecretKey checked the form NAME:BASE64.
	_, secret, _ := strings.Cut(key, ":")
	// exec keeps the last of duplicate variables: this one wins over an
	// inherited one.
	return append(env, "CACHIX_SIGNING_KEY="+key), secret, nil
}
