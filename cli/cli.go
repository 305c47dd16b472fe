// Package cli implements cachix-filter-hook's commands. main.go only calls
// Main, so that the tests can run the same code in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// env is what a command gets: its arguments, standard streams and the
// global flags.
type env struct {
	ctx        context.Context
	configFlag string
	args       []string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	version    string
}

type command struct {
	summary string
	run     func(e *env) int
}

var commands = map[string]command{
	"hook":     {"run as Nix's post-build-hook (the default without arguments)", runHook},
	"explain":  {"say which targets select each path, and by which rule", runExplain},
	"validate": {"check the config and print the effective configuration", runValidate},
	"push":     {"queue the selected paths of store paths or roots (./result, a generation)", runPush},
	"worker":   {"drain the queue in the foreground", runWorker},
	"status":   {"show the queue per target", runStatus},
	"wait":     {"block until the queue is empty", runWait},
	"retry":    {"make failing entries due now", runRetry},
	"log":      {"print what was pushed, dropped or failed, where and when", runLog},
	"doctor":   {"check that the hook is set and everything it needs is in place", runDoctor},
	"forget":   {"delete entries no longer wanted (removed targets, dropped, corrupt)", runForget},
	"version":  {"print the version", runVersion},

	// Kept apart so that its long name does not realign the others.
	"watch-exec": {"run a command and queue the new store paths it built (without the hook)", runWatchExec},
}

// errUsage is reported for bad command lines, with exit status 2.
var errUsage = errors.New("usage")

// Main runs the program and returns its exit status.
func Main(version string, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, version: version}
	fs := flag.NewFlagSet("cachix-filter-hook", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.configFlag, "config", "", "config `FILE` (default: $CACHIX_FILTER_HOOK_CONFIG, ~/.config/cachix-filter-hook/hook.conf, /etc/cachix-filter-hook/hook.conf)")
	fs.Usage = func() { usage(e.stderr, fs) }
	if wantsHelp(args) {
		usage(e.stdout, fs)
		return 0
	}
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(e.stdout, "cachix-filter-hook %s\n", e.version)
		return 0
	}
	rest := fs.Args()
	// Nix runs the hook with no arguments.
	name := "hook"
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "help" {
		usage(e.stdout, fs)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "cachix-filter-hook: unknown command %q\n", name)
		usage(e.stderr, fs)
		return 2
	}
	e.args = rest
	return cmd.run(e)
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: cachix-filter-hook [--config FILE] [COMMAND] [ARGS...]\n\n")
	fmt.Fprintf(w, "Set as nix.conf's post-build-hook, it queues the store paths that hook.conf's\n")
	fmt.Fprintf(w, "allow and deny rules select, and a detached worker pushes them to Cachix.\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nGlobal options:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(os.Stderr)
	fmt.Fprintf(w, "\nRun 'cachix-filter-hook COMMAND --help' for a command's options.\n")
}

// flags returns a FlagSet for a command with a usage line. Every command
// also takes --config, so it can come before or after the command name.
func (e *env) flags(name, argsUsage, doc string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&e.configFlag, "config", e.configFlag, "config `FILE` (see cachix-filter-hook --help)")
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: cachix-filter-hook %s %s\n\n%s\n\nOptions:\n", name, argsUsage, doc)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses the command's flags; it returns false with the exit status
// when the command should stop (--help, or a bad flag). Help goes to
// stdout, a bad flag's message and the usage to stderr.
func (e *env) parse(fs *flag.FlagSet) (int, bool) {
	if wantsHelp(e.args) {
		fs.SetOutput(e.stdout)
		fs.Usage()
		return 0, false
	}
	if err := fs.Parse(e.args); err != nil {
		return 2, false
	}
	return 0, true
}

// wantsHelp reports whether the flags (up to the first non-flag or "--")
// ask for help. Checking before parsing keeps the flag package from
// printing the usage to stderr first.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-h" || a == "-help" || a == "--help":
			return true
		case !strings.HasPrefix(a, "-"):
			return false
		}
	}
	return false
}

func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "cachix-filter-hook: "+format+"\n", args...)
}

// setUp parses the command's flags, asks for arguments when needArgs (the
// usage, and 2, without), and loads the configuration (its errors, and
// 1). It returns the configuration, or the exit status and false.
func (e *env) setUp(fs *flag.FlagSet, needArgs bool) (*config.Config, int, bool) {
	if st, ok := e.parse(fs); !ok {
		return nil, st, false
	}
	if needArgs && fs.NArg() == 0 {
		fs.Usage()
		return nil, 2, false
	}
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return nil, 1, false
	}
	return c, 0, true
}

// setUpQueue parses the command's flags and opens the configuration's
// queue; false with the exit status when it cannot.
func (e *env) setUpQueue(fs *flag.FlagSet) (*config.Config, *queue.Queue, int, bool) {
	if st, ok := e.parse(fs); !ok {
		return nil, nil, st, false
	}
	c, q, ok := e.openQueue()
	if !ok {
		return nil, nil, 1, false
	}
	return c, q, 0, true
}

// load loads the configuration and prints its warnings.
func (e *env) load() (*config.Config, error) {
	c, err := config.Load(e.configFlag)
	if err != nil {
		return nil, err
	}
	for _, w := range c.Warnings {
		e.errorf("warning: %s", w)
	}
	return c, nil
}

func runVersion(e *env) int {
	fs := e.flags("version", "", "Print the version.")
	if st, ok := e.parse(fs); !ok {
		return st
	}
	fmt.Fprintf(e.stdout, "cachix-filter-hook %s\n", e.version)
	return 0
}

// openQueue loads the config and opens its queue.
func (e *env) openQueue() (*config.Config, *queue.Queue, bool) {
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return nil, nil, false
	}
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return nil, nil, false
	}
	return c, q, true
}
