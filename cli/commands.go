package cli

import (
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
)

// command is one entry of the command table, from which help, parsing,
// shell completion and the man page all come.
type command struct {
	name    string
	args    string  // the arguments as the usage line shows them
	kind    argKind // what they are, for parsing and completion
	summary string  // the line in the list of commands
	doc     string  // the description in help and the man page
	flags   []flagDef
	// noArgs, for a command that takes none, says what to do instead
	// (%s is the first argument given); missing, for one that needs
	// some, says what was not given.
	noArgs, missing string
	hidden          bool // internal: never shown
	// noConfig commands read no config: they take no --config.
	noConfig bool
	run      func(e *env) int
}

// argKind is what a command's arguments are.
type argKind int

const (
	argsNone    argKind = iota
	argsPaths           // store paths, files in one, symlinks into the store (push: or -)
	argsCommand         // a command line of its own: our flags end where it begins
	argsShell           // bash, zsh or fish
	argsTopic           // help's optional command name
)

// commands is the command table, in the order help lists it. Each call
// makes new option values for the run functions to read.
func (e *env) commands() []*command {
	var (
		push    pushOptions
		explain explainOptions
		valid   validateOptions
		wait    waitOptions
		status  statusOptions
		doctor  jsonOption
		logs    logOptions
		forget  forgetOptions
		worker  workerOptions
		watch   watchOptions
	)
	quiet := func(q *bool) flagDef {
		return flagDef{name: "quiet", short: 'q', bind: switchVar(q), help: "no progress and no summary; only what was not pushed"}
	}
	asJSON := func(p *bool, help string) flagDef { return flagDef{name: "json", bind: switchVar(p), help: help} }
	return []*command{
		{name: "hook", run: runHook,
			summary: "run as Nix's post-build-hook (what Nix runs, with no command)",
			doc: `Run as Nix's post-build-hook (what nix.conf's post-build-hook calls, with no
arguments): read OUT_PATHS (or DRV_PATH's outputs), queue what the rules
select, start a worker, and exit 0 whatever happens (unless strict = true).`},

		{name: "push", args: "PATH...|-", kind: argsPaths, run: func(e *env) int { return runPush(e, &push) },
			missing: "no store path given (push PATH... or push - to read them from stdin)",
			summary: "queue the selected paths of store paths or roots (./result, a generation)",
			doc: `Queue the paths the rules select, with the same rules and targets as the
hook, and return at once. PATH may be a store path, a file inside one, or a
symlink into the store (./result, /run/current-system, a home-manager
generation); - reads paths from standard input. The rules are applied as
--dry-run and explain show them, closure_deny included: what they leave out
is not queued, and the line says why.

Paths the worker already pushed to a target are left out without a pusher
call, as recorded for queue.remember_pushed; --force queues them anyway
(after a cache was emptied, see also forget --pushed).

With --wait, show progress on stderr; exit 0 when everything queued went
up (or the rules, changed meanwhile, left it out: listed, a verdict), 3
when a path failed, was lost or was still queued at the timeout, or a pin
was given up on (listed with the reason), 1 for an error of the command,
2 for a usage error.

With --pin NAME, each root given (not its closure) is also pinned in every
Cachix target that pushes it (cachix pin), by the worker, once its closure
is in that cache, with retries; {host} and {target} in NAME are replaced.
A root pinned in a target goes there whatever unsubstitutable and upstream
say (it is to be kept in that cache); deny, max_nar_size and closure_deny
still apply. A Nix store has no pins: such a target is said to be left out.`,
			flags: append(append([]flagDef{
				{name: "closure", bind: switchVar(&push.closure), help: "select from each root's runtime closure, not just the root"},
				{name: "dry-run", bind: switchVar(&push.dryRun), help: "print the decisions as explain does; queue nothing"},
				{name: "force", bind: switchVar(&push.force), help: "queue paths even if the record says they were pushed"},
				{name: "fail-on-drop", bind: switchVar(&push.failOnDrop), help: "with --wait, exit 3 when the rules left out a queued path, too"},
			}, push.pin.defs()...), push.defs("wait until the queued paths are pushed; exit 3 listing those that were not",
				"no progress and no summary; only what was not pushed")...)},

		{name: "explain", args: "PATH...", kind: argsPaths, run: func(e *env) int { return runExplain(e, &explain) },
			missing: "no path given (explain PATH..., such as explain ./result)",
			summary: "say which targets select each path, and by which rule",
			doc: `Say, for each path, which targets select it and which rule decides.
PATH may be a store path (built or not), a file inside one, or a symlink
into the store such as ./result or /run/current-system.

For a path in the store, the closure rule too, as the worker applies it:
with closure_deny = "skip" a path whose closure holds a denied path (or
one larger than max_nar_size) is not pushed, naming it; with "push" the
line says what goes up inside its closure, and a denied path given with
one whose closure holds it is "denied ..., but uploaded".`,
			flags: []flagDef{asJSON(&explain.json, "print every target's decision as JSON")}},

		{name: "validate", run: func(e *env) int { return runValidate(e, &valid) },
			noArgs:  "to check a file, run: cachix-filter-hook validate --config %s",
			summary: "check the config and print the effective configuration",
			doc: `Load and check the config, and what it names that the worker will use (the
token file, signing keys, the private keys of a store URI's ssh-key= and
tls-private-key=, cachix.bin found in your PATH, cachix's own cachix.dhall
as a worker started in this environment finds it, nix.bin_dir's nix and
nix-store, a file:// or local store's directories, a unix:// store's
socket), by the rules the worker applies; print the effective configuration
(file plus environment overrides) and exit 0, or print every problem and
exit 1.`,
			flags: []flagDef{{name: "config-only", bind: switchVar(&valid.configOnly),
				help: "check the config alone, not the files and programs it names nor the file's own owner here (for a config made for another machine, such as a NixOS module's, checked in the build sandbox)"}}},

		{name: "doctor", run: func(e *env) int { return runDoctor(e, doctor.json) },
			summary: "check that the hook is set and everything it needs is in place",
			doc: `Check that everything the hook needs is in place: the post-build-hook Nix
uses, Nix's version and its known hook bugs, the config, the signing and
private keys, file:// and local stores' directories and unix:// stores'
sockets the targets name (each line placed at its store key's file:line),
the token, cachix and its own cachix.dhall as the hook's worker under
nix-daemon finds them (in nix-daemon's environment, when one runs, not
yours), the queue, the worker and the pins it cannot drop, and whether you
are a trusted user. One line per check: ok, warning or problem, with the
fix. Exit 1 when there is a problem.`,
			flags: []flagDef{asJSON(&doctor.json, "print as JSON")}},

		{name: "status", run: func(e *env) int { return runStatus(e, &status) },
			summary: "show the queue per target",
			doc: `Show, per target, what is pending and failing, when it last pushed, the pins
waiting, and whether a worker runs. --prometheus prints the metrics the
worker writes to metrics.file, in Prometheus' text format.`,
			flags: []flagDef{asJSON(&status.json, "print as JSON"),
				{name: "prometheus", bind: switchVar(&status.prometheus), help: "print the metrics in Prometheus' text format (as metrics.file)"}}},

		{name: "wait", run: func(e *env) int { return runWait(e, &wait) },
			summary: "block until the queue is empty",
			doc: `Block until nothing is left to push, starting a worker if entries are pending
and none runs (after a crash, say), showing progress per target on stderr.
A path the rules left out after it was queued (the worker applies the
current rules, closure_deny included) is listed with the rule: a verdict,
not a failure. Exit 0 when everything that was to go up went up; 3 when a
path failed, was lost (garbage-collected before its push: listed with the
reason) or was still queued at the timeout; 1 when wait itself failed (a
worker that cannot start: said with why); 2 for a usage error. Without
--timeout (or with 0 or less) it exits 3, with the errors, as soon as
every entry left has failed and only waits for its back-off
(--keep-trying waits on). Entries of targets no longer in the config are
not waited for. Call it at the end of a CI job.`,
			flags: []flagDef{
				{name: "timeout", arg: "DUR", bind: durationVar(&wait.timeout, 0), help: "give up after DUR (0 or less, the default: no time limit)"},
				{name: "keep-trying", bind: switchVar(&wait.keepTrying), help: "without --timeout (or with 0 or less), wait on while every entry left is failing"},
				{name: "fail-on-drop", bind: switchVar(&wait.failOnDrop), help: "exit 3 when the rules left out a path after it was queued, too"},
				quiet(&wait.quiet),
			}},

		{name: "log", run: func(e *env) int { return runLog(e, &logs) },
			noArgs:  "filter with --path GLOB",
			summary: "print what was pushed, dropped or failed, where and when",
			doc: `Print the worker's record of outcomes, oldest first: each path pushed, dropped
(with the reason) or failed (with the pusher's error), per target, with the
time and the pusher call's duration. The record lives in the queue directory
(` + history.File + `, rotated past 4 MiB, so at most 8 MiB).`,
			flags: []flagDef{
				asJSON(&logs.json, "print JSON lines"),
				{name: "target", arg: "T", values: valueTarget, bind: stringVar(&logs.target), help: "only the target named T"},
				{name: "since", arg: "DUR", bind: durationVar(&logs.since, 0), help: "only the last DUR (such as 1h)"},
				{name: "path", arg: "GLOB", bind: stringVar(&logs.glob), help: "only paths matching GLOB, as allow and deny rules match: without /, the name after the hash (hello-*); starting with /, the whole path; a pushed path's record also when the denied path its closure uploaded matches (closure_deny = \"push\")"},
			}},

		{name: "retry", run: runRetry,
			summary: "make failing entries due now",
			doc:     `Make every failing entry due now, and start a worker if none runs.`},

		{name: "forget", run: func(e *env) int { return runForget(e, &forget) },
			summary: "delete entries no longer wanted (removed targets, dropped, corrupt)",
			doc: `Delete queue files that are no longer wanted, saying which. Without
--dropped, --corrupt or --pushed: the queued entries of targets no longer in
the config, or of target T (they will then not be pushed). --dropped: the
entries the worker dropped (dropped/, see log), of target T if given.
--corrupt: the unreadable entries moved to corrupt/, all of them (their
target is unknown: not with --target). --pushed: the record of
paths pushed to T's cache (all targets' without --target), after the cache
was emptied, so that the hook and push queue those paths again. Queued
entries are only removed while no worker runs (only the worker changes
them): forget waits up to ` + config.HumanDuration(lockWait) + ` for one to exit. The record of outcomes
(log) is kept.`,
			flags: []flagDef{
				{name: "target", arg: "T", values: valueTarget, bind: stringVar(&forget.target), help: "only target T"},
				{name: "dropped", bind: switchVar(&forget.dropped), help: "delete the dropped entries"},
				{name: "corrupt", bind: switchVar(&forget.corrupt), help: "delete the corrupt entries"},
				{name: "pushed", bind: switchVar(&forget.pushed), help: "delete the record of pushed paths"},
				{name: "dry-run", bind: switchVar(&forget.dryRun), help: "only print what would be deleted"},
			}},

		{name: "worker", run: func(e *env) int { return runWorker(e, &worker) },
			summary: "drain the queue in the foreground",
			doc: `Drain the queue in the foreground, as a systemd service does. Exactly one
worker drains a queue at a time; a second one waits for the lock. It works in
/, as the worker the hook starts does, so that cachix and nix copy resolve a
relative path as validate and doctor did.`,
			flags: []flagDef{
				{name: "once", bind: switchVar(&worker.once), help: "exit when nothing more can be pushed now (exit 1 if entries wait for a retry)"},
				{name: "spawned", hidden: true, bind: switchVar(&worker.spawned), help: "run as the hook's detached worker: leave if another runs, exit after queue.linger idle"},
			}},

		{name: "watch-exec", args: "[--] COMMAND [ARGS...]", kind: argsCommand, run: func(e *env) int { return runWatchExec(e, &watch) },
			missing: "no command given (watch-exec -- COMMAND [ARGS...])",
			summary: "run a command and queue the new store paths it built (without the hook)",
			doc: `Run COMMAND (no shell), then queue the store paths that became valid while it
ran and that your config's rules select, as the hook would have. For users
who cannot set post-build-hook (Nix ignores an untrusted user's --option
post-build-hook). It watches the store directory for the lock files Nix
deletes when it registers a path, as cachix watch-exec does; no root
needed. The store is shared: a path another user builds meanwhile is seen
too, and goes up only if your rules select it. Unlike the hook it also
sees substituted paths. Paths added to the store as they are (nix-store
--add, builtins.path: no deriver, no signature), which may be anybody's
files, are left out unless --include-added. Exits with COMMAND's status
(127 when it is not found, 126 when it cannot be run), or 1 without
running it when the config does not load, the store cannot be watched or
a signal came before COMMAND started.
The flags of watch-exec come before COMMAND; what follows COMMAND is its
own.`,
			flags: append(watch.defs("wait until the queued paths are pushed (failures are reported, the exit status stays COMMAND's)",
				"no progress and no summary; only what was not pushed"),
				flagDef{name: "include-added", bind: switchVar(&watch.includeAdded), help: "also queue paths added to the store without a build or substitution (nix-store --add, builtins.path), yours or anyone's"})},

		{name: "completion", args: "bash|zsh|fish", kind: argsShell, run: runCompletion, noConfig: true,
			missing: "no shell given (completion bash, completion zsh or completion fish)",
			summary: "print the shell completion script for bash, zsh or fish",
			doc: `Print the completion script for a shell: commands, flags, target names from
the config and file names. Packages install it; to try it in the running
shell:

  source <(cachix-filter-hook completion bash)
  source <(cachix-filter-hook completion zsh)
  cachix-filter-hook completion fish | source`},

		{name: "version", run: runVersion, noConfig: true, summary: "print the version", doc: `Print the version.`},

		{name: "help", args: "[COMMAND]", kind: argsTopic, run: runHelp, noConfig: true,
			summary: "show the commands, or a command's help",
			doc:     `Show the list of commands, or the help of COMMAND.`},

		// Internal: what the completion scripts call, and the man page's
		// generator (make man).
		{name: "__targets", hidden: true, run: runTargets, summary: "print the config's target names"},
		{name: "__man", hidden: true, run: runMan, noConfig: true, summary: "print the man page"},
	}
}

// lookup finds a command by name.
func lookup(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

// jsonOption is the options of commands whose only flag is --json.
type jsonOption struct{ json bool }
