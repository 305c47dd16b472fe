package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/suggest"
)

// flagDef is one flag in the command table. Help, parsing, completion and
// the man page all read it.
type flagDef struct {
	name  string // --name
	short byte   // -x, or 0
	// arg is the value's placeholder in help (FILE, DUR); "" for a
	// switch, which takes no value.
	arg  string
	help string
	// hidden flags are internal (worker --spawned): parsed, never shown.
	hidden bool
	// values says what completion offers for the flag's value.
	values valueKind
	bind   func(fs *pflag.FlagSet, d *flagDef)
}

// valueKind is what a flag's value or a command's argument is, for
// completion.
type valueKind int

const (
	valueNone    valueKind = iota // nothing to offer (a duration, a glob)
	valueFile                     // a file name
	valueTarget                   // a target name from the config
	valueShell                    // bash, zsh or fish
	valueCommand                  // one of our commands
)

func switchVar(p *bool) func(*pflag.FlagSet, *flagDef) {
	return func(fs *pflag.FlagSet, d *flagDef) { fs.BoolVarP(p, d.name, shortName(d), *p, d.help) }
}

func stringVar(p *string) func(*pflag.FlagSet, *flagDef) {
	return func(fs *pflag.FlagSet, d *flagDef) { fs.StringVarP(p, d.name, shortName(d), *p, d.help) }
}

func intVar(p *int) func(*pflag.FlagSet, *flagDef) {
	return func(fs *pflag.FlagSet, d *flagDef) { fs.IntVarP(p, d.name, shortName(d), *p, d.help) }
}

// givenIntVar binds an integer flag and records in set whether it was
// given, for a flag whose 0 means something other than its absence.
func givenIntVar(p *int, set *bool) func(*pflag.FlagSet, *flagDef) {
	return func(fs *pflag.FlagSet, d *flagDef) {
		fs.VarP(&givenInt{p, set}, d.name, shortName(d), d.help)
	}
}

type givenInt struct {
	p   *int
	set *bool
}

func (g *givenInt) String() string { return strconv.Itoa(*g.p) }
func (g *givenInt) Type() string   { return "int" }
func (g *givenInt) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return err
	}
	*g.p, *g.set = int(n), true
	return nil
}

// durationVar binds a duration flag whose default is def.
func durationVar(p *time.Duration, def time.Duration) func(*pflag.FlagSet, *flagDef) {
	return func(fs *pflag.FlagSet, d *flagDef) { fs.DurationVarP(p, d.name, shortName(d), def, d.help) }
}

func shortName(d *flagDef) string {
	if d.short == 0 {
		return ""
	}
	return string(d.short)
}

// commandFlags are a command's own flags and those every command takes:
// --config (unless it reads no config), so that it can follow the
// command name, and --help.
func commandFlags(e *env, cmd *command, help *bool) []flagDef {
	common := commonFlags(e, help)
	if cmd.noConfig {
		common = common[1:]
	}
	return append(append([]flagDef{}, cmd.flags...), common...)
}

// globalFlags are those before the command name.
func globalFlags(e *env, help, version *bool) []flagDef {
	return append(commonFlags(e, help), flagDef{name: "version", bind: switchVar(version), help: "print the version and exit"})
}

// commonFlags are --config and --help.
func commonFlags(e *env, help *bool) []flagDef {
	return []flagDef{
		{name: "config", arg: "FILE", values: valueFile, bind: stringVar(&e.configFlag), help: configHelp},
		{name: "help", short: 'h', bind: switchVar(help), help: "show this help"},
	}
}

const configHelp = `use config FILE (default: the first that exists of
$CACHIX_FILTER_HOOK_CONFIG, $XDG_CONFIG_HOME/cachix-filter-hook/hook.conf,
/etc/cachix-filter-hook/hook.conf; as root, /etc's before root's own)`

// flagSet makes the pflag set of defs. Errors are returned, never printed
// by pflag: the caller words them.
func flagSet(name string, defs []flagDef) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	for i := range defs {
		d := &defs[i]
		d.bind(fs, d)
		if d.arg != "" {
			_ = fs.SetAnnotation(d.name, annotationArg, []string{d.arg})
		}
		if d.hidden {
			_ = fs.MarkHidden(d.name)
		}
	}
	return fs
}

// parseFlags parses args against fs, flags anywhere unless !interspersed
// (then they end at the first argument, which begins a command line of
// its own); "--" ends them. A Go-style single-dash long flag (-json,
// -config FILE) is taken as its double-dash form, so that scripts
// written for the flag package keep working.
func parseFlags(fs *pflag.FlagSet, args []string, interspersed bool) ([]string, error) {
	fs.SetInterspersed(interspersed)
	args, err := longDashes(fs, args, interspersed)
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, flagError(fs, err)
	}
	return fs.Args(), nil
}

// longDashes rewrites -name to --name where name is a long flag of fs,
// stepping over flag values and stopping where the flags end. A word of
// one dash and several letters that is neither a long flag nor a group of
// short ones (-hello-1) is refused whole, as pflag would only name one
// letter of it.
func longDashes(fs *pflag.FlagSet, args []string, interspersed bool) ([]string, error) {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		switch {
		case a == "--":
			return append(out, args[i+1:]...), nil
		case len(a) < 2 || a[0] != '-':
			if !interspersed {
				return append(out, args[i+1:]...), nil
			}
			continue
		}
		var f *pflag.Flag // a flag that takes the next word as its value
		if name, ok := strings.CutPrefix(a, "--"); ok {
			if n, _, withValue := strings.Cut(name, "="); !withValue {
				f = fs.Lookup(n)
			}
		} else if n, _, withValue := strings.Cut(a[1:], "="); len(n) > 1 && fs.Lookup(n) != nil {
			out[len(out)-1] = "-" + a
			if !withValue {
				f = fs.Lookup(n)
			}
		} else {
			for j := 1; j < len(a); j++ {
				s := fs.ShorthandLookup(a[j : j+1])
				if s == nil {
					return nil, fmt.Errorf("unknown flag %s%s", a, suggestFlag(fs, a[1:]))
				}
				if s.NoOptDefVal == "" {
					if j == len(a)-1 {
						f = s
					}
					break // the rest is its value
				}
			}
		}
		if f != nil && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out, nil
}

// flagError words pflag's errors as ours, with the closest flag name for
// an unknown one.
func flagError(fs *pflag.FlagSet, err error) error {
	var unknown *pflag.NotExistError
	var noValue *pflag.ValueRequiredError
	var bad *pflag.InvalidValueError
	switch {
	case errors.As(err, &unknown) && unknown.GetSpecifiedShortnames() != "":
		arg := unknown.GetSpecifiedShortnames()
		if len(arg) == 1 {
			return fmt.Errorf("unknown flag -%s", arg)
		}
		name, _, _ := strings.Cut(arg, "=")
		return fmt.Errorf("unknown flag -%s%s", arg, suggestFlag(fs, name))
	case errors.As(err, &unknown):
		name := unknown.GetSpecifiedName()
		return fmt.Errorf("unknown flag --%s%s", name, suggestFlag(fs, name))
	case errors.As(err, &noValue):
		f := noValue.GetFlag()
		return fmt.Errorf("--%s needs a value: --%s %s", f.Name, f.Name, argOf(f))
	case errors.As(err, &bad):
		f := bad.GetFlag()
		cause := errors.Unwrap(bad)
		if f.Value.Type() == "duration" {
			cause = errors.New("not a duration (say 90s, 10m, 1h30m)")
		}
		return fmt.Errorf("--%s %q: %v", f.Name, bad.GetValue(), cause)
	}
	return err
}

// argOf is a flag's value placeholder, kept in its annotations.
func argOf(f *pflag.Flag) string {
	if a := f.Annotations[annotationArg]; len(a) > 0 {
		return a[0]
	}
	return "VALUE"
}

const annotationArg = "cfh-arg"

func suggestFlag(fs *pflag.FlagSet, name string) string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	if best := suggest.Closest(name, slices.Values(names)); best != "" {
		return fmt.Sprintf(" (did you mean --%s?)", best)
	}
	return ""
}

// flagUsages formats the visible flags as help shows them.
func flagUsages(w io.Writer, defs []flagDef, defaults map[string]string) {
	type row struct{ left, help string }
	var rows []row
	width := 0
	for _, d := range defs {
		if d.hidden {
			continue
		}
		left := "    "
		if d.short != 0 {
			left = fmt.Sprintf("-%c, ", d.short)
		}
		left += "--" + d.name
		if d.arg != "" {
			left += " " + d.arg
		}
		help := d.help
		if def := defaults[d.name]; def != "" {
			help += " (default " + def + ")"
		}
		rows = append(rows, row{left, help})
		width = max(width, len(left))
	}
	for _, r := range rows {
		lines := wrap(r.help, 78-width-4)
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "  %-*s  %s\n", width, "", l)
		}
	}
}

// defaultsOf are the defaults help shows: those of flags with a value
// that is not empty or zero, durations as a person writes them (10m).
func defaultsOf(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "duration":
			if d, err := time.ParseDuration(f.DefValue); err == nil && d != 0 {
				out[f.Name] = config.HumanDuration(d)
			}
		case "string":
			if f.DefValue != "" {
				out[f.Name] = f.DefValue
			}
		}
	})
	return out
}

// wrap splits text into lines of at most width columns, keeping the
// line breaks it has.
func wrap(text string, width int) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+1+len(w) > width {
				lines = append(lines, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		lines = append(lines, line)
	}
	return lines
}
