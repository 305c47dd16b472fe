// Command cachix-standin stands in for the real `cachix` CLI in tests.
//
// cachix cannot be installed on the test machines (no registry we can reach
// ships it), yet the hook must be tested against something that behaves like
// it: same argument grammar, same auth rules, same exit codes, and a real
// upload of the runtime closure. So this program accepts cachix's grammar
// (the `push` and `pin` commands), checks auth the way cachix does, and
// "uploads" with `nix copy` into a local file:// binary cache:
//
//	$CACHIX_STANDIN_ROOT/<CACHE>/<hash>.narinfo, nar/...
//
// `pin` takes cachix's grammar (cachix/src/Cachix/Client/OptionsParser.hs,
// pinOptionsParser):
//
//	cachix pin CACHE PIN-NAME STORE-PATH [-a|--artifact PATH]...
//	           [--keep-days INT | --keep-revisions INT | --keep-forever]
//
// with the keep options excluding each other, an auth token required (a
// signing key is not enough, as cachix's getAuthTokenRequired), each
// artifact a file inside the store path; it fails, unlike what is known
// of Cachix, when the cache does not hold the path yet, so that a pin sent
// before its push fails the tests. Each pin made is a line of
// $CACHIX_STANDIN_ROOT/pins.jsonl:
//
//	{"time":..., "cache":..., "name":..., "path":..., "artifacts":[...],
//	 "keep":"revisions 3"|"days 7"|"forever"|"", "pid":...}
//
// Anything cachix would reject (an unknown option such as --omit-deps, a
// missing CACHE, a bad -m/-l value, a -s outside 5 MiB..5 GiB, an option
// given twice) is rejected here too, with exit 1, so a
// hook that builds a bad command line fails its tests instead of production.
// What cachix accepts is accepted: its global options (-c, --host or
// --hostname, -v) also after the command, among its own, as
// optparse-applicative's subparserInline lets them (each once in all);
// that pusher puts them before it is checked by pusher's tests of the
// argv, not by a refusal here.
// A path that is not a valid store path (garbage-collected since it was
// queued) is warned about and skipped, and the push goes on and exits 0,
// as cachix's push does (Cachix.Client.CNix: "Warning: PATH is not valid,
// skipping", in yellow on stderr): a pusher must not take that exit 0 for
// an upload of the path.
//
// Environment read, as cachix reads it:
//
//	CACHIX_AUTH_TOKEN   auth token; else authToken = "..." in the dhall
//	                    config (-c FILE, default
//	                    $XDG_CONFIG_HOME/cachix/cachix.dhall or
//	                    $HOME/.config/cachix/cachix.dhall)
//	CACHIX_SIGNING_KEY  accepted instead of a token; when set, the paths
//	                    are signed with it as they are copied (nix copy
//	                    with secret-key=), as cachix signs narinfos with
//	                    the key of a self-signed cache
//	NIX_STORE_DIR       store directory (default /nix/store)
//
// Test controls:
//
//	CACHIX_STANDIN_ROOT        required; where caches and logs go.
//	CACHIX_STANDIN_TURNS       a file: each push and pin takes the next
//	                           turn (1, 2, ... in the order they come,
//	                           counted in $CACHIX_STANDIN_ROOT/.turn-count
//	                           under flock) and waits until the file holds
//	                           at least that many bytes, before the gate:
//	                           a byte written lets one more call through.
//	CACHIX_STANDIN_DELAY       Go duration slept before each push and
//	                           pin, to simulate a slow upload or call.
//	CACHIX_STANDIN_GATE        a file: each push and pin waits until it
//	                           exists, before the delay, so that a test can
//	                           see the queue before anything leaves it.
//	CACHIX_STANDIN_FAIL        N: the first N pushes fail with exit 1 and
//	                           "simulated failure k of N". Counted in
//	                           $CACHIX_STANDIN_ROOT/.fail-count under flock,
//	                           so concurrent pushes count correctly.
//	CACHIX_STANDIN_FAIL_PATHS  space-separated path.Match globs on a store
//	                           path's name (the part after "<hash>-"); a push
//	                           naming a matching path fails with exit 1
//	                           ("simulated failure for PATH"), every time.
//	                           Only the paths given are matched, not their
//	                           closures.
//	CACHIX_STANDIN_TRICK       comma-separated tricks, for fault injection
//	                           into each push and pin; the file
//	                           $CACHIX_STANDIN_ROOT/trick, when it exists,
//	                           replaces the variable (so a test can change
//	                           the behaviour of a running worker's calls).
//	                           Tricks:
//	                             fail     every call fails with exit 1
//	                                      ("simulated failure (trick)")
//	                             hang     start a grandchild (sleep) that
//	                                      holds stdout and stderr, write its
//	                                      pid to $ROOT/hang.pids, and sleep
//	                                      forever
//	                             flood=N  print N bytes of "x" on one line
//	                                      (no newline) to stdout first
//	                           Applied after the delay, before
//	                           CACHIX_STANDIN_FAIL.
//
// Every invocation (when CACHIX_STANDIN_ROOT is set) appends one JSON line to
// $CACHIX_STANDIN_ROOT/invocations.jsonl under flock:
//
//	{"time":..., "argv":[os.Args[1:]...], "cache":..., "paths":[...],
//	 "token_sha256":..., "auth":..., "exit":0|1, "pid":...}
//
// token_sha256 is the hex SHA-256 of the token used (empty if none), and
// signing_key_sha256 that of CACHIX_SIGNING_KEY, so tests can prove the
// secrets arrived without them ever being written down.
//
// Checks run in this order: arguments, CACHIX_STANDIN_ROOT, auth, paths
// (each must be an existing store path, strictly: no symlinks such as
// ./result are followed), turns, gate, delay, CACHIX_STANDIN_FAIL, CACHIX_STANDIN_FAIL_PATHS,
// then nix copy. Simulated failures therefore never run Nix.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const version = "1.7.4-standin"

const usage = `Usage: cachix [-c|--config CONFIGPATH] [--host|--hostname URI] [-v|--verbose] COMMAND
       cachix push [-m|--compression-method xz|zstd] [-l|--compression-level 0..16]
                   [-s|--chunk-size BYTES] [-n|--num-concurrent-chunks N]
                   [-j|--jobs N] [--omit-deriver] CACHE [PATHS...]
       cachix pin CACHE-NAME PIN-NAME STORE-PATH [-a|--artifact ARTIFACTS...]
                  [--keep-days INT | --keep-revisions INT | --keep-forever]

  Stand-in for cachix: only the push and pin commands are supported. With
  no PATHS, push reads whitespace-separated paths from stdin.`

// Args is a parsed command line. Numeric options the user did not give
// stay 0 (or "" for strings) so tests can tell given from defaulted.
type Args struct {
	Config  string
	Host    string
	Verbose bool
	// Command is "push", "help" or "version".
	Command           string
	CompressionMethod string
	CompressionLevel  int
	LevelGiven        bool
	ChunkSize         int
	NumChunks         int
	Jobs              int
	OmitDeriver       bool
	Cache             string
	Paths             []string
	// pin's: the pin's name and store path, its artifacts, and which
	// keep option was given ("" none, "days", "revisions", "forever")
	// with its value.
	PinName   string
	PinPath   string
	Artifacts []string
	Keep      string
	KeepN     int
}

// UsageError is a command-line error; it is printed with the usage, the
// way optparse-applicative (which cachix uses) does.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErr(format string, a ...any) error {
	return &UsageError{fmt.Sprintf(format, a...)}
}

// canonical names each option that takes a single value or is a switch
// (global or push's) by its long form, so that -j and --jobs count as
// the same option.
var canonical = map[string]string{
	"-v": "--verbose", "--verbose": "--verbose",
	"-c": "--config", "--config": "--config",
	// cachix's flagParser takes host <|> hostname: one of the two, once.
	"--host": "--host", "--hostname": "--host",
	"--omit-deriver": "--omit-deriver",
	"-m":             "--compression-method", "--compression-method": "--compression-method",
	"-l": "--compression-level", "--compression-level": "--compression-level",
	"-s": "--chunk-size", "--chunk-size": "--chunk-size",
	"-n": "--num-concurrent-chunks", "--num-concurrent-chunks": "--num-concurrent-chunks",
	"-j": "--jobs", "--jobs": "--jobs",
}

// globalNames are cachix's global options (flagParser), which globalOpt
// takes.
var globalNames = map[string]bool{
	"-v": true, "--verbose": true, "-c": true, "--config": true, "--host": true, "--hostname": true,
}

// The range of -s/--chunk-size (cachix's minChunkSize and maxChunkSize).
const (
	minChunkSize = 5 << 20
	maxChunkSize = 5 << 30
)

// cacheName keeps the cache name usable as one directory name, so a
// hostile or mistaken name cannot write outside CACHIX_STANDIN_ROOT.
var cacheName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// Parse parses cachix's argument grammar (args excludes the program name).
// It is a plain function so the grammar can be tested without exec.
func Parse(args []string) (Args, error) {
	var a Args
	i := 0
	// optparse-applicative takes each option (but a `many` one, such as
	// pin's -a) once: the parser of an option that matched is done, so
	// a second -j, or -v, is an "Invalid option", as an unknown one is.
	seen := map[string]bool{}
	once := func(arg, name string) error {
		key := canonical[name]
		if seen[key] {
			return usageErr("Invalid option `%s'", arg)
		}
		seen[key] = true
		return nil
	}
	// Global options, up to the command word.
	for ; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			break
		}
		name, val, hasVal := splitOpt(arg)
		if _, known := canonical[name]; known {
			if err := once(arg, name); err != nil {
				return a, err
			}
		}
		if ok, err := globalOpt(&a, args, &i, arg, name, val, hasVal); ok || err != nil {
			if err != nil {
				return a, err
			}
			continue
		}
		switch name {
		case "--help", "-h":
			return Args{Command: "help"}, nil
		case "--version":
			return Args{Command: "version"}, nil
		default:
			return a, usageErr("Invalid option `%s'", arg)
		}
	}
	if i == len(args) {
		return a, usageErr("Missing: COMMAND")
	}
	switch cmd := args[i]; cmd {
	case "push":
		a.Command = "push"
	case "pin":
		a.Command = "pin"
		return parsePin(a, args[i+1:], once)
	case "version":
		return Args{Command: "version"}, nil
	default:
		return a, usageErr("Invalid argument `%s' (this cachix stand-in supports only the push and pin commands)", cmd)
	}
	i++
	var pos []string
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			pos = append(pos, arg) // optparse lets options and arguments mix
			continue
		}
		name, val, hasVal := splitOpt(arg)
		if _, known := canonical[name]; known {
			if err := once(arg, name); err != nil {
				return a, err
			}
		}
		if ok, err := globalOpt(&a, args, &i, arg, name, val, hasVal); ok || err != nil {
			if err != nil {
				return a, err
			}
			continue
		}
		switch name {
		case "--help", "-h":
			return Args{Command: "help"}, nil
		case "--omit-deriver":
			if hasVal {
				return a, usageErr("Invalid option `%s'", arg)
			}
			a.OmitDeriver = true
		case "-m", "--compression-method":
			v, err := optValue(args, &i, name, val, hasVal)
			if err != nil {
				return a, err
			}
			if v != "xz" && v != "zstd" {
				return a, usageErr("option %s: Compression method %q not supported. Use xz or zstd.", name, v)
			}
			a.CompressionMethod = v
		case "-l", "--compression-level", "-s", "--chunk-size",
			"-n", "--num-concurrent-chunks", "-j", "--jobs":
			v, err := optValue(args, &i, name, val, hasVal)
			if err != nil {
				return a, err
			}
			n, err := readInt(v)
			if err != nil || n < 0 {
				return a, usageErr("option %s: cannot parse value `%s'", name, v)
			}
			switch name {
			case "-l", "--compression-level":
				if n > 16 {
					return a, usageErr("option %s: compression level must be between 0 and 16, got %d", name, n)
				}
				a.CompressionLevel, a.LevelGiven = n, true
			case "-s", "--chunk-size":
				// cachix's validateChunkSize: 5 MiB to 5 GiB.
				if n < minChunkSize || n > maxChunkSize {
					return a, usageErr("option %s: value %d not in expected range: [%d..%d]", name, n, minChunkSize, maxChunkSize)
				}
				a.ChunkSize = n
			case "-n", "--num-concurrent-chunks":
				a.NumChunks = n
			default:
				a.Jobs = n
			}
		default:
			return a, usageErr("Invalid option `%s'", arg)
		}
	}
	if len(pos) == 0 {
		return a, usageErr("Missing: CACHE")
	}
	a.Cache, a.Paths = pos[0], pos[1:]
	if !cacheName.MatchString(a.Cache) {
		return a, usageErr("invalid cache name `%s'", a.Cache)
	}
	return a, nil
}

// globalOpt takes args[*i] when it is one of cachix's global options
// (flagParser), and reports whether it was. cachix parses with
// subparserInline: after the command word the global options not given
// before it are still there to match, mixed with the command's own, so
// they are taken there too, each once in all (see Parse's once).
func globalOpt(a *Args, args []string, i *int, arg, name, val string, hasVal bool) (bool, error) {
	switch name {
	case "-v", "--verbose":
		if hasVal {
			return true, usageErr("Invalid option `%s'", arg)
		}
		a.Verbose = true
	case "-c", "--config", "--host", "--hostname":
		v, err := optValue(args, i, name, val, hasVal)
		if err != nil {
			return true, err
		}
		if name == "-c" || name == "--config" {
			a.Config = v
		} else {
			a.Host = v
		}
	default:
		return false, nil
	}
	return true, nil
}

// parsePin parses pin's options and arguments, which optparse lets mix,
// and the global options not given before the command (once).
func parsePin(a Args, args []string, once func(arg, name string) error) (Args, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			pos = append(pos, arg)
			continue
		}
		name, val, hasVal := splitOpt(arg)
		if globalNames[name] {
			if err := once(arg, name); err != nil {
				return a, err
			}
			if _, err := globalOpt(&a, args, &i, arg, name, val, hasVal); err != nil {
				return a, err
			}
			continue
		}
		switch name {
		case "--help", "-h":
			return Args{Command: "help"}, nil
		case "-a", "--artifact":
			v, err := optValue(args, &i, name, val, hasVal)
			if err != nil {
				return a, err
			}
			a.Artifacts = append(a.Artifacts, v)
		case "--keep-days", "--keep-revisions", "--keep-forever":
			// One of the three, once: after one alternative of
			// keepParser matched, optparse has no parser left for
			// another.
			if a.Keep != "" {
				return a, usageErr("Invalid option `%s'", arg)
			}
			a.Keep = strings.TrimPrefix(name, "--keep-")
			if name == "--keep-forever" {
				if hasVal {
					return a, usageErr("Invalid option `%s'", arg)
				}
				continue
			}
			v, err := optValue(args, &i, name, val, hasVal)
			if err != nil {
				return a, err
			}
			n, err := readInt(v)
			if err != nil {
				return a, usageErr("option %s: cannot parse value `%s'", name, v)
			}
			a.KeepN = n
		default:
			return a, usageErr("Invalid option `%s'", arg)
		}
	}
	names := []string{"CACHE-NAME", "PIN-NAME", "STORE-PATH"}
	if len(pos) < len(names) {
		return a, usageErr("Missing: %s", strings.Join(names[len(pos):], " "))
	}
	if len(pos) > len(names) {
		return a, usageErr("Invalid argument `%s'", pos[len(names)])
	}
	a.Cache, a.PinName, a.PinPath = pos[0], pos[1], pos[2]
	a.Paths = []string{a.PinPath}
	if !cacheName.MatchString(a.Cache) {
		return a, usageErr("invalid cache name `%s'", a.Cache)
	}
	return a, nil
}

// readInt reads an Int as optparse-applicative's auto does: Haskell's
// reads, which must take the whole value. It skips leading white space,
// but not trailing, and knows no "+" sign.
func readInt(v string) (int, error) {
	s := strings.TrimLeft(v, " \t\n\r\f\v")
	if strings.HasPrefix(s, "+") {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// splitOpt splits "--jobs=8" into ("--jobs", "8", true) and "-j8" into
// ("-j", "8", true); other arguments come back whole.
func splitOpt(arg string) (name, val string, hasVal bool) {
	if strings.HasPrefix(arg, "--") {
		return strings.Cut(arg, "=")
	}
	if len(arg) > 2 {
		return arg[:2], arg[2:], true
	}
	return arg, "", false
}

// optValue returns an option's value, taking the next argument when the
// value was not attached to the option.
func optValue(args []string, i *int, name, val string, hasVal bool) (string, error) {
	if hasVal {
		return val, nil
	}
	if *i+1 >= len(args) {
		return "", usageErr("The option `%s' expects an argument.", name)
	}
	*i++
	return args[*i], nil
}

// record is one line of invocations.jsonl.
type record struct {
	Time        string   `json:"time"`
	Argv        []string `json:"argv"`
	Cache       string   `json:"cache"`
	Paths       []string `json:"paths"`
	TokenSHA256 string   `json:"token_sha256"`
	KeySHA256   string   `json:"signing_key_sha256,omitempty"`
	Auth        string   `json:"auth"`
	Exit        int      `json:"exit"`
	PID         int      `json:"pid"`
}

func main() {
	rec := record{Argv: os.Args[1:], Paths: []string{}, PID: os.Getpid()}
	err := run(os.Args[1:], os.Stdin, os.Stdout, &rec)
	var ue *UsageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "%s\n\n%s\n", ue.Msg, usage)
	case err != nil:
		fmt.Fprintf(os.Stderr, "cachix: %v\n", err)
	}
	if err != nil {
		rec.Exit = 1
	}
	if root := os.Getenv("CACHIX_STANDIN_ROOT"); root != "" {
		rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
		line, _ := json.Marshal(rec)
		if lerr := appendLocked(filepath.Join(root, "invocations.jsonl"), append(line, '\n')); lerr != nil {
			fmt.Fprintf(os.Stderr, "cachix-standin: cannot log invocation: %v\n", lerr)
		}
	}
	os.Exit(rec.Exit)
}

// run does one invocation, filling rec as it learns the cache, the paths
// and the token.
func run(argv []string, stdin io.Reader, stdout io.Writer, rec *record) error {
	a, err := Parse(argv)
	if err != nil {
		return err
	}
	switch a.Command {
	case "help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "version":
		fmt.Fprintln(stdout, "cachix", version)
		return nil
	}
	rec.Cache = a.Cache
	rec.Paths = append(rec.Paths, a.Paths...)
	root := os.Getenv("CACHIX_STANDIN_ROOT")
	if root == "" {
		return errors.New("CACHIX_STANDIN_ROOT is not set; the cachix stand-in needs a directory to push into")
	}
	if root, err = filepath.Abs(root); err != nil {
		return err
	}

	token, auth := findToken(a.Config)
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		rec.TokenSHA256 = hex.EncodeToString(sum[:])
	}
	rec.Auth = auth
	if k := os.Getenv("CACHIX_SIGNING_KEY"); k != "" {
		sum := sha256.Sum256([]byte(k))
		rec.KeySHA256 = hex.EncodeToString(sum[:])
	}
	if a.Command == "pin" {
		return pin(root, a, token, stdout)
	}
	if auth == "" {
		return errors.New("Neither auth token nor signing key are present.")
	}

	paths := a.Paths
	if len(paths) == 0 {
		in, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("reading paths from stdin: %w", err)
		}
		paths = strings.Fields(string(in))
		rec.Paths = append(rec.Paths, paths...)
	}
	valid := make([]string, 0, len(paths))
	for _, p := range paths {
		if err := checkStorePath(p); err != nil {
			fmt.Fprintf(os.Stderr, "\x1b[33mWarning: %v, skipping\x1b[0m\n", err)
			continue
		}
		valid = append(valid, p)
	}
	paths = valid

	if err := delayAndTricks(root, stdout); err != nil {
		return err
	}
	if err := simulatedFailure(root, paths); err != nil {
		return err
	}

	if len(paths) == 0 {
		fmt.Fprintln(stdout, "Nothing to push.")
		return nil
	}
	return push(root, a, paths, stdout)
}

// delayAndTricks is what a push and a pin go through before their work:
// CACHIX_STANDIN_TURNS, CACHIX_STANDIN_GATE, CACHIX_STANDIN_DELAY, then
// the trick file's failure or hang.
func delayAndTricks(root string, stdout io.Writer) error {
	if f := os.Getenv("CACHIX_STANDIN_TURNS"); f != "" {
		k, err := bumpCounter(filepath.Join(root, ".turn-count"))
		if err != nil {
			return fmt.Errorf("CACHIX_STANDIN_TURNS: %w", err)
		}
		for {
			if fi, err := os.Stat(f); err == nil && fi.Size() >= int64(k) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if g := os.Getenv("CACHIX_STANDIN_GATE"); g != "" {
		for {
			if _, err := os.Stat(g); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if d := os.Getenv("CACHIX_STANDIN_DELAY"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			return fmt.Errorf("CACHIX_STANDIN_DELAY: %w", err)
		}
		time.Sleep(dur)
	}
	return tricks(root, stdout)
}

// noAuthToken is how cachix's getAuthTokenRequired fails (its
// noAuthTokenError, first line).
const noAuthToken = "Start by visiting https://app.cachix.org and create a personal/cache auth token."

// pinRecord is one line of pins.jsonl.
type pinRecord struct {
	Time      string   `json:"time"`
	Cache     string   `json:"cache"`
	Name      string   `json:"name"`
	Path      string   `json:"path"`
	Artifacts []string `json:"artifacts"`
	Keep      string   `json:"keep"`
	PID       int      `json:"pid"`
}

// pin checks a pin as cachix does (a token, a valid store path, each
// artifact a file in it), requires the cache to hold the path, applies
// the delay and the tricks, and records the pin.
func pin(root string, a Args, token string, stdout io.Writer) error {
	if token == "" {
		return errors.New(noAuthToken)
	}
	if err := checkStorePath(a.PinPath); err != nil {
		return err
	}
	for _, art := range a.Artifacts {
		file := filepath.Join(a.PinPath, strings.TrimPrefix(art, "/"))
		if fi, err := os.Stat(file); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("Artifact %s doesn't exist.", file)
		}
	}
	hash := filepath.Base(a.PinPath)[:32]
	if _, err := os.Stat(filepath.Join(root, a.Cache, hash+".narinfo")); err != nil {
		return fmt.Errorf("(stand-in) %s is not in cache %s: push it first", a.PinPath, a.Cache)
	}
	if err := delayAndTricks(root, stdout); err != nil {
		return err
	}
	keep := a.Keep
	if a.Keep == "days" || a.Keep == "revisions" {
		keep += " " + strconv.Itoa(a.KeepN)
	}
	artifacts := a.Artifacts
	if artifacts == nil {
		artifacts = []string{}
	}
	line, _ := json.Marshal(pinRecord{Time: time.Now().UTC().Format(time.RFC3339Nano), Cache: a.Cache, Name: a.PinName,
		Path: a.PinPath, Artifacts: artifacts, Keep: keep, PID: os.Getpid()})
	if err := appendLocked(filepath.Join(root, "pins.jsonl"), append(line, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Pinned %s as %s in %s\n", a.PinPath, a.PinName, a.Cache)
	return nil
}

// findToken returns the auth token (may be empty) and where auth came from:
// "env", "config", "signing-key" or "" for none, in cachix's order.
func findToken(config string) (token, source string) {
	if t := os.Getenv("CACHIX_AUTH_TOKEN"); t != "" {
		return t, "env"
	}
	if config == "" {
		dir := os.Getenv("XDG_CONFIG_HOME")
		if dir == "" {
			dir = filepath.Join(os.Getenv("HOME"), ".config")
		}
		config = filepath.Join(dir, "cachix", "cachix.dhall")
	}
	// A missing or unreadable config is no error for cachix either.
	if b, err := os.ReadFile(config); err == nil {
		if m := dhallToken.FindSubmatch(b); m != nil && len(m[1]) > 0 {
			return string(m[1]), "config"
		}
	}
	if os.Getenv("CACHIX_SIGNING_KEY") != "" {
		return "", "signing-key"
	}
	return "", ""
}

var dhallToken = regexp.MustCompile(`authToken\s*=\s*"([^"]*)"`)

// storeBase matches a store path's base name: 32 characters of Nix's
// base-32 alphabet, a dash, and a name by Nix's rules.
var storeBase = regexp.MustCompile(`^[0123456789abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]{0,210}$`)

// checkStorePath fails unless p is a top-level store path that exists,
// with cachix's words for why.
func checkStorePath(p string) error {
	dir := os.Getenv("NIX_STORE_DIR")
	if dir == "" {
		dir = "/nix/store"
	}
	if filepath.Dir(p) != filepath.Clean(dir) || !storeBase.MatchString(filepath.Base(p)) {
		return fmt.Errorf("%s: not a store path in %s", p, dir)
	}
	if _, err := os.Lstat(p); err != nil {
		return fmt.Errorf("%s is not valid", p)
	}
	return nil
}

// simulatedFailure applies CACHIX_STANDIN_FAIL and CACHIX_STANDIN_FAIL_PATHS.
func simulatedFailure(root string, paths []string) error {
	if s := os.Getenv("CACHIX_STANDIN_FAIL"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("CACHIX_STANDIN_FAIL: %w", err)
		}
		k, err := bumpCounter(filepath.Join(root, ".fail-count"))
		if err != nil {
			return err
		}
		if k <= n {
			return fmt.Errorf("simulated failure %d of %d", k, n)
		}
	}
	for _, pat := range strings.Fields(os.Getenv("CACHIX_STANDIN_FAIL_PATHS")) {
		for _, p := range paths {
			name := filepath.Base(p)[33:] // checkStorePath vouched for "<32 chars>-"
			if ok, err := path.Match(pat, name); err != nil {
				return fmt.Errorf("CACHIX_STANDIN_FAIL_PATHS: %q: %w", pat, err)
			} else if ok {
				return fmt.Errorf("simulated failure for %s", p)
			}
		}
	}
	return nil
}

// bumpCounter increments the number in file under an exclusive flock and
// returns the new value, so concurrent pushes each get their own number.
func bumpCounter(file string) (int, error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	k := 0
	if s := strings.TrimSpace(string(b)); s != "" {
		if k, err = strconv.Atoi(s); err != nil {
			return 0, fmt.Errorf("%s: %w", file, err)
		}
	}
	k++
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(k)+"\n"), 0); err != nil {
		return 0, err
	}
	return k, nil // closing the file releases the lock
}

// appendLocked appends data to file under an exclusive flock, so lines
// from concurrent invocations never interleave.
func appendLocked(file string, data []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	_, err = f.Write(data)
	return err
}

// nixFlags make `nix` usable without configuration and keep it off the
// network: the copy only reads the local store, and no substituter is asked.
var nixFlags = []string{"--extra-experimental-features", "nix-command", "--option", "substituters", ""}

// push copies the runtime closure of paths into the file:// cache, as
// cachix uploads whole closures. Nix runs from an argv, never a shell.
func push(root string, a Args, paths []string, stdout io.Writer) error {
	var closure bytes.Buffer
	q := exec.Command("nix", append(append(append([]string{}, nixFlags...), "path-info", "--recursive"), paths...)...)
	q.Stdout, q.Stderr = &closure, os.Stderr
	if err := q.Run(); err != nil {
		return fmt.Errorf("nix path-info: %w", err)
	}
	all := strings.Fields(closure.String())
	method := a.CompressionMethod
	if method == "" {
		method = "zstd"
	}
	fmt.Fprintf(stdout, "Pushing %d paths using %s to cache %s\n", len(all), method, a.Cache)
	// The NARs are compressed as cachix does, with the method it says
	// (Nix's file:// default, xz, took 5 ms a small path where zstd
	// takes 1).
	to := "file://" + filepath.Join(root, a.Cache) + "?compression=" + method
	if key := os.Getenv("CACHIX_SIGNING_KEY"); key != "" {
		// Nix reads a key from a file: a private one, removed after.
		dir, err := os.MkdirTemp("", "cachix-standin-key-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "key")
		if err := os.WriteFile(file, []byte(key), 0o600); err != nil {
			return err
		}
		to += "&secret-key=" + file
	}
	args := append(append([]string{}, nixFlags...), "copy", "--to", to)
	args = append(args, paths...)
	if a.Verbose {
		fmt.Fprintf(os.Stderr, "running: nix %q\n", args)
	}
	c := exec.Command("nix", args...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("nix copy: %w", err)
	}
	for _, p := range all {
		fmt.Fprintf(stdout, "✓ %s\n", p)
	}
	fmt.Fprintln(stdout, "All done.")
	return nil
}

// tricks applies CACHIX_STANDIN_TRICK, or the trick file that replaces it.
func tricks(root string, stdout io.Writer) error {
	spec := os.Getenv("CACHIX_STANDIN_TRICK")
	if b, err := os.ReadFile(filepath.Join(root, "trick")); err == nil {
		spec = string(b)
	}
	fail := false
	for _, t := range strings.Split(spec, ",") {
		t = strings.TrimSpace(t)
		name, val, _ := strings.Cut(t, "=")
		switch name {
		case "":
		case "fail":
			fail = true
		case "hang":
			return hang(root)
		case "flood":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return fmt.Errorf("CACHIX_STANDIN_TRICK: flood=%q: want a number of bytes", val)
			}
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for n > 0 {
				k := min(n, len(chunk))
				if _, err := stdout.Write(chunk[:k]); err != nil {
					return err
				}
				n -= k
			}
		default:
			return fmt.Errorf("CACHIX_STANDIN_TRICK: unknown trick %q", t)
		}
	}
	if fail {
		return errors.New("simulated failure (trick)")
	}
	return nil
}

// hang starts a grandchild that keeps our stdout and stderr open, records
// its pid, and never returns: a pusher whose own children hold its output
// pipe after it is killed.
func hang(root string) error {
	c := exec.Command("sleep", "3600")
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Start(); err != nil {
		return fmt.Errorf("hang: %w", err)
	}
	if err := appendLocked(filepath.Join(root, "hang.pids"), []byte(strconv.Itoa(c.Process.Pid)+"\n")); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "hanging, with a grandchild holding the output")
	for {
		time.Sleep(time.Hour)
	}
}
