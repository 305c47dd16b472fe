// Package config finds, loads and validates hook.conf.
//
// The file is TOML (go-toml); every key can be overridden from the
// environment (CACHIX_FILTER_HOOK_<KEY>, dots as underscores) so that CI
// runners can configure the tool without writing a file. Everything is
// checked here, once, so that the hook, the worker and the commands all see
// the same validated configuration and the same compiled rules. What the
// rules decide about a path is package policy's: config only loads.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
)

// EnvConfig names the config file when --config is not given.
const EnvConfig = "CACHIX_FILTER_HOOK_CONFIG"

// EnvUserConfigDir, when set (empty: none), is the per-user directory
// SearchPath tries, in place of XDG_CONFIG_HOME's or HOME's: the worker
// the hook starts gets the hook's (see worker.Spawn), with a HOME for
// cachix the hook may not have had. Not CACHIX_FILTER_HOOK_*, which
// names keys.
const EnvUserConfigDir = "_CACHIX_FILTER_HOOK_USER_CONFIG_DIR"

// EnvPrefix starts every environment override.
const EnvPrefix = "CACHIX_FILTER_HOOK"

// Closure-deny policies.
const (
	ClosurePush = "push" // push the path; its closure goes up whole
	ClosureSkip = "skip" // leave out a path whose closure holds a denied path
)

// Config is the validated configuration.
type Config struct {
	// File is the config file that was read, or "" when the
	// configuration came from the environment alone.
	File    string
	Targets []*Target
	Strict  bool
	// UpstreamTimeout bounds one question to an upstream cache.
	UpstreamTimeout time.Duration
	// UpstreamDeadline bounds one round of questions to the upstream
	// caches; past it the paths not answered are pushed.
	UpstreamDeadline time.Duration
	Cachix           Cachix
	Nix              Nix
	Queue            Queue
	Log              Log
	Metrics          Metrics
	// Host is this machine's host name, as the worker reads it (see
	// hostName): the hosts rule and pin names ({host}) use it.
	Host string
	// Warnings are problems that do not stop the program, such as a
	// target whose empty allow list selects nothing.
	Warnings []string
	// sources records where each effective value came from, for validate.
	sources map[string]string
}

// Target is one destination with its rules.
type Target struct {
	Name        string
	Cache       string // Cachix cache name, or
	Store       string // Nix store URI
	Allow       []string
	Deny        []string
	ClosureDeny string
	// MaxNarSize, Unsubstitutable, Upstream and SecretKeyFile are read
	// by pathrules.go, applied by package policy. A [[target]] inherits
	// them from the top level.
	MaxNarSize      int64 // 0: no limit
	Unsubstitutable string
	Upstream        []string
	SecretKeyFile   string
	// PackageLists lets the target push what package lists name
	// (package_lists; see package pkglist), with no allow rule for it.
	PackageLists bool
	Rules        *filter.Rules
	// Hosts lists the host names (globs) the target is on; HostRules
	// is it compiled (nil: every host) and Host this machine's name.
	// Package policy applies them.
	Hosts     []string
	HostRules *filter.Hosts
	Host      string
	// Label names the target in messages and in validate's output:
	// "top level" (the default target, made of the top-level keys),
	// `target "NAME"` for a [[target]] that sets its name, else
	// "[[target]] #N", counted from 1 in the file.
	Label string
	// top marks the default target, whose values may come from the
	// environment; sources says where each of its values came from
	// (see Config.Effective).
	top     bool
	sources map[string]string
}

// Cachix configures the cachix executable.
type Cachix struct {
	Bin           string
	AuthTokenFile string
	PushArgs      []string
	// SigningKeyFile's content goes to cachix as CACHIX_SIGNING_KEY.
	SigningKeyFile string
}

// Nix says where nix and nix-store are.
type Nix struct {
	BinDir string
}

// Queue configures the on-disk queue and the worker.
type Queue struct {
	Dir          string
	Batch        int
	RetryInitial time.Duration
	RetryMax     time.Duration
	Linger       time.Duration
	// PushTimeout bounds one pusher call; the pusher and everything it
	// started are killed after it.
	PushTimeout time.Duration
	// RememberPushed is how long the record of pushed paths (package
	// pushed) lets a path be left out; 0 keeps no record.
	RememberPushed time.Duration
	// DroppedMax and DroppedMaxAge bound what dropped/ and corrupt/
	// keep (0: no bound); the worker prunes them.
	DroppedMax    int
	DroppedMaxAge time.Duration
}

// Log configures the worker's log file.
type Log struct {
	File    string
	Level   string
	MaxSize int64
}

// Metrics configures the metrics file (package metrics).
type Metrics struct {
	// File is rewritten by the worker in Prometheus' text format; ""
	// writes none.
	File string
}

// hostName is this machine's host name as the worker will read it: the
// kernel's (uname -n; a UTS namespace has its own), lower-cased. No
// variable changes it: the hook runs as root with whatever environment
// nix-daemon has, and a variable saying "this is builder-1" would let
// whoever could set it choose the caches root pushes to. The tests set
// the host name in a UTS namespace of their own (test/fleet_test.go).
func hostName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(h)
}

// Find returns the config file to read: flagPath, then $CACHIX_FILTER_HOOK_CONFIG,
// then the per-user file and the system file (the system file first for
// root, see searchPath). An explicitly named file must exist; the others
// are skipped when missing. It returns "" when no file exists, which
// leaves the environment as the only source.
//
// The path is made absolute: the worker it is handed to runs in /.
func Find(flagPath string) (string, error) { return find(flagPath, os.Geteuid()) }

// find is Find for the user euid, whose search path it takes.
func find(flagPath string, euid int) (string, error) {
	if flagPath != "" {
		return absolute(flagPath, "--config")
	}
	if p := os.Getenv(EnvConfig); p != "" {
		return absolute(p, EnvConfig)
	}
	for _, p := range searchPath(euid) {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}

func absolute(p, from string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return a, nil
}

// systemDir holds the machine-wide hook.conf. It is fixed when the
// binary is linked and read from nothing at run time: the hook runs as
// root with nix-daemon's environment, and `push` runs as whoever asks, so
// neither an environment variable nor a flag may move root's config. The
// end-to-end tests link their binary with
// -ldflags "-X <module>/internal/config.systemDir=DIR", so that they never
// read this machine's file; this package's tests set it themselves.
var systemDir = "/etc/cachix-filter-hook"

// SearchPath lists the files Find tries after --config and the environment.
func SearchPath() []string { return searchPath(os.Geteuid()) }

// SystemFile is the machine-wide hook.conf.
func SystemFile() string { return filepath.Join(systemDir, "hook.conf") }

// searchPath is SearchPath for the user euid. Root reads the machine's
// file before its own: the hook runs as root with whatever HOME
// nix-daemon has (none on NixOS, /root elsewhere), and would otherwise
// follow root's ~/.config file where one exists, not the one the NixOS
// worker unit is given and `sudo doctor` checks. Root's own file is
// still read where the machine has none (single-user Nix as root,
// home-manager for root).
func searchPath(euid int) []string {
	var paths []string
	if d := UserConfigDir(); d != "" {
		paths = append(paths, filepath.Join(d, "cachix-filter-hook", "hook.conf"))
	}
	if euid == 0 {
		return append([]string{SystemFile()}, paths...)
	}
	return append(paths, SystemFile())
}

// UserConfigDir is the directory of the per-user hook.conf, "" for none.
func UserConfigDir() string {
	if d, ok := os.LookupEnv(EnvUserConfigDir); ok {
		if filepath.IsAbs(d) {
			return d
		}
		return ""
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return d
	}
	if h := os.Getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".config")
	}
	return ""
}

// DefaultQueueDir is /var/lib/cachix-filter-hook for root (the hook under
// nix-daemon), and the user's XDG state directory otherwise.
func DefaultQueueDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/cachix-filter-hook"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "cachix-filter-hook")
	}
	if h := os.Getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "cachix-filter-hook")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("cachix-filter-hook-%d", os.Geteuid()))
}

// Target returns the target with that name, or nil.
func (c *Config) Target(name string) *Target {
	for _, t := range c.Targets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// RecordKey names the record of paths pushed to t's destination (package
// pushed). It is a digest of the destination, not of the target's name:
// pointing a target at another cache starts a new record, and nothing of a
// store URI reaches a file name.
func (t *Target) RecordKey() string {
	dest := "cachix:" + t.Cache
	if t.Store != "" {
		dest = "store:" + t.Store
	}
	sum := sha256.Sum256([]byte(dest))
	return hex.EncodeToString(sum[:16])
}
