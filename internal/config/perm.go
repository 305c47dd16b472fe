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
	f, err := trust.Open(file, trust.Secret)
	if err != nil {
		if trust.IsRefusal(err) {
			return "", err
		}
		return "", fmt.Errorf("reading token file: %w", err)
	}
	defer f.Close()
	// Read from the descriptor the rule was checked on; a FIFO does not
	// block (trust.Open); a secret is small.
	b, err := safeopen.ReadAll(f, maxTokenSize)
	if err != nil {
		return "", fmt.Errorf("reading token file %s: %w", file, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}
