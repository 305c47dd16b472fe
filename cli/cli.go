// Package cli implements cachix-filter-hook's commands. main.go only calls
// Main, so that the tests can run the same code in-process.
//
// Every command, flag and argument is an entry of the command table
// (commands.go); help, parsing, shell completion and the man page are
// made from it.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/suggest"
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
	cmd        *command // the command running
	// ensureWorker starts a worker unless one runs (nil:
	// worker.EnsureRunning); tests see the call instead.
	ensureWorker func(*config.Config, *queue.Queue) error
}

// Main runs the program and returns its exit status. version is what the
// build stamped (-ldflags -X main.version=...), or "" (see Version, which
// only the version command reads).
func Main(version string, args []string) int {
	ctx, stop := context.Background(), func() {}
	if sigs := stopSignals(); len(sigs) > 0 {
		ctx, stop = signal.NotifyContext(ctx, sigs...)
	}
	defer stop()
	e := &env{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, version: version}
	return e.main(args)
}

// stopSignals are SIGINT and SIGTERM, but for one we were started with
// ignored (SIGINT in a script's background job): that stays ignored, as
// caught it would be default again in what we run (watch-exec's
// command). Never Notify with none: that catches every signal.
func stopSignals() []os.Signal {
	var sigs []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

func (e *env) main(args []string) int {
	if len(args) == 0 {
		return e.bare()
	}
	// The global flags come before the command name; they end at it.
	var help, showVersion bool
	fs := flagSet("cachix-filter-hook", globalFlags(e, &help, &showVersion))
	rest, err := parseFlags(fs, args, false)
	switch {
	case err != nil:
		e.errorf("%v", err)
		fmt.Fprintf(e.stderr, "Run 'cachix-filter-hook --help' for the commands and their options.\n")
		return 2
	case help:
		e.usage(e.stdout)
		return 0
	case showVersion:
		return runVersion(e)
	}
	if len(rest) == 0 {
		return e.bare()
	}
	cmds := e.commands()
	name := rest[0]
	cmd := lookup(cmds, name)
	if cmd == nil {
		var names []string
		for _, c := range cmds {
			if !c.hidden {
				names = append(names, c.name)
			}
		}
		hint := ""
		if best := suggest.Closest(name, slices.Values(names)); best != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", best)
		}
		e.errorf("unknown command %q%s", name, hint)
		fmt.Fprintf(e.stderr, "Run 'cachix-filter-hook --help' for the commands.\n")
		return 2
	}
	return e.run(cmd, rest[1:])
}

// bare runs the program without a command: as the hook. Nix runs it
// with no arguments, and always with DRV_PATH set; by hand, at a
// terminal, without either variable, running the hook would only say
// "nothing to queue". This path parses nothing and builds no command
// table: it is what every build pays for.
func (e *env) bare() int {
	if os.Getenv("OUT_PATHS") == "" && os.Getenv("DRV_PATH") == "" && (isTerminal(e.stdin) || isTerminal(e.stderr)) {
		e.shortUsage()
		return 2
	}
	return runHook(e)
}

// run parses a command's flags and checks its arguments, then runs it.
func (e *env) run(cmd *command, args []string) int {
	e.cmd = cmd
	var help bool
	defs := commandFlags(e, cmd, &help)
	fs := flagSet(cmd.name, defs)
	pos, err := parseFlags(fs, args, cmd.kind != argsCommand)
	if err != nil {
		e.errorf("%s: %v", cmd.name, err)
		if cmd.kind == argsPaths && strings.HasPrefix(err.Error(), "unknown flag -") && !strings.HasPrefix(err.Error(), "unknown flag --") {
			fmt.Fprintf(e.stderr, "A path that begins with - goes after --: cachix-filter-hook %s -- ./-name\n", cmd.name)
		}
		e.usageHint(cmd)
		return 2
	}
	if help {
		e.commandHelp(e.stdout, cmd, defs, defaultsOf(fs))
		return 0
	}
	switch n := len(pos); {
	case cmd.kind == argsNone && n > 0:
		msg := fmt.Sprintf("%s takes no arguments", cmd.name)
		if cmd.noArgs != "" {
			msg += "; " + strings.ReplaceAll(cmd.noArgs, "%s", pos[0])
		}
		e.errorf("%s", msg)
		e.usageHint(cmd)
		return 2
	case (cmd.kind == argsPaths || cmd.kind == argsCommand || cmd.kind == argsShell) && n == 0:
		e.errorf("%s: %s", cmd.name, cmd.missing)
		e.usageHint(cmd)
		return 2
	case (cmd.kind == argsShell || cmd.kind == argsTopic) && n > 1:
		e.errorf("%s takes one argument, %s", cmd.name, cmd.args)
		e.usageHint(cmd)
		return 2
	}
	e.args = pos
	return cmd.run(e)
}

// usageHint follows a usage error: the usage line, and where the rest is.
func (e *env) usageHint(cmd *command) {
	fmt.Fprintf(e.stderr, "Usage: %s\nRun 'cachix-filter-hook %s --help' for more.\n", usageLine(cmd), cmd.name)
}

func usageLine(cmd *command) string {
	line := "cachix-filter-hook " + cmd.name
	if len(cmd.flags) > 0 {
		line += " [OPTIONS]"
	}
	if cmd.args != "" {
		line += " " + cmd.args
	}
	return line
}

// usage is the top-level help.
func (e *env) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: cachix-filter-hook [--config FILE] COMMAND [OPTIONS] [ARGS...]\n\n")
	fmt.Fprintf(w, "%s\n\nCommands:\n", description)
	for _, c := range e.commands() {
		if !c.hidden {
			fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
		}
	}
	var help, v bool
	fmt.Fprintf(w, "\nOptions:\n")
	flagUsages(w, globalFlags(e, &help, &v), nil)
	fmt.Fprintf(w, "\n%s\n", flagsAnywhere)
	fmt.Fprintf(w, "Run 'cachix-filter-hook help COMMAND' for a command's options; man cachix-filter-hook\nfor all of them.\n")
}

// description says what the program is, in help and the man page.
const description = `Set as nix.conf's post-build-hook, cachix-filter-hook queues the store paths
that hook.conf's allow and deny rules select, and a detached worker pushes
them to Cachix (or copies them to a Nix store). With no command, it runs as
the hook.`

const flagsAnywhere = `Options may come before or after the arguments; -- ends them (an argument
after it is never an option, even one that begins with -).`

// commandHelp is a command's --help.
func (e *env) commandHelp(w io.Writer, cmd *command, defs []flagDef, defaults map[string]string) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nOptions:\n", usageLine(cmd), cmd.doc)
	flagUsages(w, defs, defaults)
}

// shortUsage is what the bare command prints at a terminal.
func (e *env) shortUsage() {
	fmt.Fprintf(e.stderr, `cachix-filter-hook is Nix's post-build-hook: Nix runs it after each build,
with DRV_PATH and OUT_PATHS set. By hand, name a command:
  cachix-filter-hook status     what is queued, pushed and failing
  cachix-filter-hook doctor     check the setup, with the fix for each problem
  cachix-filter-hook --help     every command
`)
}

// errorf says a message on stderr. Its control characters are escaped:
// a message may hold an argument, or where a symlink someone else made
// leads, and on a terminal an escape sequence there could retitle it,
// clear it or forge a line.
func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "cachix-filter-hook: %s\n", escape.Controls(fmt.Sprintf(format, args...)))
}

// jsonEncoder is a --json output's encoder. What it writes was read from
// files (the history, state.json) that an older version or Nix's stderr
// filled: DEL, the C1 and the bidirectional controls, which
// encoding/json writes as they are, go out as \uNNNN (escape.JSON).
func jsonEncoder(w io.Writer) *json.Encoder { return json.NewEncoder(jsonEscaper{w}) }

// jsonEscaper escapes what json.Encoder writes, one whole value a Write.
type jsonEscaper struct{ w io.Writer }

func (j jsonEscaper) Write(p []byte) (int, error) {
	if _, err := j.w.Write(escape.JSON(nil, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// load loads the configuration and prints its warnings.
func (e *env) load() (*config.Config, error) { return e.loadWith(config.Load) }

// loadWith is load by load (config.Load or config.LoadElsewhere).
func (e *env) loadWith(load func(string) (*config.Config, error)) (*config.Config, error) {
	c, err := load(e.configFlag)
	if err != nil {
		return nil, err
	}
	for _, w := range c.Warnings {
		e.errorf("warning: %s", w)
	}
	return c, nil
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

func runVersion(e *env) int {
	fmt.Fprintf(e.stdout, "cachix-filter-hook %s\n", Version(e.version))
	return 0
}

func runHelp(e *env) int {
	if len(e.args) == 0 {
		e.usage(e.stdout)
		return 0
	}
	cmd := lookup(e.commands(), e.args[0])
	if cmd == nil || cmd.hidden {
		e.errorf("help: unknown command %q", e.args[0])
		return 2
	}
	return e.run(cmd, []string{"--help"})
}
