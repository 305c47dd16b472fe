package config

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// maxKeySize bounds a signing key file: a Nix secret key is a name and
// 88 characters of base64.
const maxKeySize = 64 << 10

// ReadSecretKey reads a Nix signing key ("name:base64"), from
// secret_key_file or cachix.signing_key_file. The file must pass the trust
// rule for a secret (see package trust: owned by root or the running user,
// neither readable nor writable by others, nor its directories writable):
// whoever reads it can sign paths that every user of the cache trusts.
// Errors never contain the file's content.
func ReadSecretKey(file string) (string, error) {
	b, err := readTrusted(file, trust.Secret, "signing key", maxKeySize)
	if err != nil {
		return "", err
	}
	key := strings.TrimSpace(string(b))
	name, data, ok := strings.Cut(key, ":")
	// Go's decoder skips line breaks, which Nix's and cachix's refuse: a
	// key wrapped over lines would pass here and fail at the push.
	if raw, err := base64.StdEncoding.DecodeString(data); !ok || name == "" || err != nil || len(raw) != 64 || strings.ContainsAny(data, "\r\n") {
		return "", fmt.Errorf("signing key %s is not a Nix secret key (NAME:BASE64 of 64 bytes, as nix-store --generate-binary-cache-key writes)", file)
	}
	return key, nil
}

// CheckStoreKeys checks each key file a store URI's secret-key= or
// secret-keys= names (StoreKeyFiles) as ReadSecretKey does
// secret_key_file: nix copy signs with it as root all the same. Its
// ssh-key= and tls-private-key= pass the same trust rule: Nix logs in
// with them as root.
func CheckStoreKeys(store string) error {
	if param := relativeStoreFile(store); param != "" {
		return fmt.Errorf("store's %s=: must be an absolute path%s", param, notShown)
	}
	for _, f := range storeFiles(store) {
		var err error
		if f.private() {
			err = checkPrivateKey(f.file)
		} else {
			_, err = ReadSecretKey(f.file)
		}
		if err != nil {
			return &StoreKeyError{Param: f.param, Private: f.private(), Err: err}
		}
	}
	return nil
}

// StoreKeyError is CheckStoreKeys' refusal of a file a store URI names,
// which says whether it is a private key Nix logs in with (ssh-key=,
// tls-private-key=) rather than a signing key, whose fix differs.
type StoreKeyError struct {
	Param   string // the URI's parameter: "secret-key", "ssh-key"...
	Private bool
	Err     error
}

func (e *StoreKeyError) Error() string { return fmt.Sprintf("store's %s=: %v", e.Param, e.Err) }
func (e *StoreKeyError) Unwrap() error { return e.Err }

// checkPrivateKey applies the trust rule for a secret to a private key
// Nix or ssh reads, in whatever format it is.
func checkPrivateKey(file string) error {
	f, err := trust.Open(file, trust.Secret)
	if err != nil {
		if trust.IsRefusal(err) {
			return err
		}
		return fmt.Errorf("reading private key: %w", err)
	}
	return f.Close()
}

// relativeStoreFile names the parameter of the first file a store URI
// names by a relative path, or "": Nix would read it from the worker's
// working directory, and, as for secret_key_file, the value may be the
// secret itself.
func relativeStoreFile(store string) string {
	for _, f := range storeFiles(store) {
		if !filepath.IsAbs(f.file) {
			return f.param
		}
	}
	return ""
}

// CheckKeyFiles reads every signing key file the worker would read and
// returns a problem per unusable one, for validate and doctor:
// cachix.signing_key_file only when a target is a Cachix cache, as the
// worker reads it only for those (the token likewise), and the key files
// a store URI names.
func (c *Config) CheckKeyFiles() []error {
	var errs []error
	seen := map[string]bool{}
	check := func(key, file string) {
		if file == "" || seen[file] {
			return
		}
		seen[file] = true
		if _, err := ReadSecretKey(file); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	for _, t := range c.Targets {
		if t.Cache != "" {
			check("cachix.signing_key_file", c.Cachix.SigningKeyFile)
			break
		}
	}
	for _, t := range c.Targets {
		check(fmt.Sprintf("target %q: secret_key_file", t.Name), t.SecretKeyFile)
		if err := CheckStoreKeys(t.Store); err != nil {
			errs = append(errs, fmt.Errorf("target %q: %w", t.Name, err))
		}
	}
	return errs
}
