package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// Fingerprint tells configurations apart by content, not by a file's
// mtime (which an editor, cp -p or a deployment tool may keep): the file
// config.Find picks, a digest of its bytes, and a digest of the
// CACHIX_FILTER_HOOK_* variables that override its keys. The worker keeps
// the fingerprint of the config it runs with, to notice a change; status
// compares the running worker's with its caller's.
type Fingerprint struct {
	// File is the config file, "" when the configuration comes from the
	// environment alone.
	File string `json:"config_file"`
	// Digest is the SHA-256 of File's bytes, or of the reason they could
	// not be read (a missing file is a configuration too: an invalid one).
	Digest string `json:"config_digest"`
	// Env names the override variables set; their values are left out of
	// state.json and status, only EnvDigest covers them.
	Env       []string `json:"env,omitempty"`
	EnvDigest string   `json:"env_digest"`
}

// Equal reports whether two fingerprints are of the same configuration.
func (f Fingerprint) Equal(g Fingerprint) bool {
	return f.File == g.File && f.Digest == g.Digest && f.EnvDigest == g.EnvDigest
}

// Short is the start of the file's digest, for log lines.
func (f Fingerprint) Short() string {
	if len(f.Digest) > 12 {
		return f.Digest[:12]
	}
	return f.Digest
}

// TakeFingerprint fingerprints the configuration config.Load(flag) would
// load now. Take it before loading: should the file change in between,
// the fingerprint is of the older content, and the next check reloads.
func TakeFingerprint(flag string) Fingerprint {
	file, err := config.Find(flag)
	if err != nil {
		// The next Load fails the same way; the digest of the reason
		// still tells this state apart from a readable file's.
		return Fingerprint{Digest: digest([]byte("error: " + err.Error())), Env: envNames(), EnvDigest: envDigest()}
	}
	return FingerprintOf(file)
}

// FingerprintOf fingerprints the configuration in file ("" for none) with
// the process's environment.
func FingerprintOf(file string) Fingerprint {
	f := Fingerprint{File: file, Env: envNames(), EnvDigest: envDigest()}
	if file == "" {
		f.Digest = digest(nil)
		return f
	}
	// Opened as config.Load opens it (the trust rule, checked on the
	// descriptor read), with the same limit: a file too large to load is
	// refused here too instead of read whole.
	var data []byte
	fh, err := trust.Open(file, trust.File)
	if err == nil {
		data, err = safeopen.ReadAll(fh, config.MaxConfigSize)
		fh.Close()
	}
	if err != nil {
		f.Digest = digest([]byte("error: " + err.Error()))
		return f
	}
	f.Digest = digest(data)
	return f
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// overrides are the CACHIX_FILTER_HOOK_* variables that change the
// configuration, as NAME=VALUE, sorted. Left out: the config file's name
// (the fingerprint has the file itself) and queue.dir, which Spawn sets
// for the worker it starts: whoever reads a queue's state.json found the
// queue by that directory already. Empty variables count as unset, as in
// config.Load.
func overrides() []string {
	skip := map[string]bool{config.EnvConfig: true, config.EnvName("queue.dir"): true}
	var out []string
	for _, kv := range os.Environ() {
		name, val, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, config.EnvPrefix+"_") && val != "" && !skip[name] {
			out = append(out, kv)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func envNames() []string {
	var names []string
	for _, kv := range overrides() {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	return names
}

func envDigest() string {
	var b strings.Builder
	for _, kv := range overrides() {
		fmt.Fprintf(&b, "%s\n", kv)
	}
	return digest([]byte(b.String()))
}
