package config

import (
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// maxTokenSize bounds a token file; a Cachix token is a few hundred bytes.
const maxTokenSize = 64 << 10

// ReadToken reads a secret from file, refusing a file that fails the trust
// rule as a secret (see package trust): owned by root or the running user,
// writable by nobody else, readable by nobody else, like an SSH private
// key. The error never contains the file's content.
func ReadToken(file string) (string, error) {
	b, err := readTrusted(file, trust.Secret, "token file", maxTokenSize)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}

// readTrusted reads file whole, at most max bytes, refusing one that
// fails the trust rule for kind (see package trust). It reads from the
// very descriptor the rule was checked on (trust.Open, where a FIFO does
// not block), so the file cannot be swapped in between. what names the
// file in errors, which never hold its content.
func readTrusted(file string, kind trust.Kind, what string, max int64) ([]byte, error) {
	f, err := trust.Open(file, kind)
	if err != nil {
		if trust.IsRefusal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	defer f.Close()
	b, err := safeopen.ReadAll(f, max)
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, file, err)
	}
	return b, nil
}
