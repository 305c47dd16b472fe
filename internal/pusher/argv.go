package pusher

import (
	"os"
	"strings"
)

// ArgBudget is how many bytes of store paths one pusher call may carry
// in its argv: the kernel's limit on argv and environment together (a
// quarter of the stack limit on Linux), less the environment and room for
// the pusher's own arguments, and at most 1 MiB (some 15,000 paths), so a
// backlog goes up in few calls without ever failing with E2BIG.
func ArgBudget() int {
	limit := argMax()
	env := 0
	for _, kv := range os.Environ() {
		env += len(kv) + 1 + 8
	}
	b := limit - env - 64<<10
	return max(min(b, 1<<20), 32<<10)
}

// ArgCost is what one path costs of ArgBudget: its bytes, the NUL and the
// pointer to it.
func ArgCost(path string) int { return len(path) + 1 + 8 }

// cachixGlobalArgs splits args (cachix.push_args) into cachix's global
// options (-c/--config FILE, --host or --hostname URL, -v/--verbose:
// cachix's flagParser takes both spellings of the host, and its --help
// shows --hostname), which go before
// the subcommand, where cachix's grammar has them, and the rest, push's
// own, which go after `push`: `cachix pin` takes the global ones (the
// config file and server the token belongs to) and would refuse push's.
// A bundle of short options ("-vj8") is split between the two. What
// follows a "--" is left in rest.
func cachixGlobalArgs(args []string) (global, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		// next takes the following argument as the option's value.
		next := func() []string {
			if i+1 < len(args) {
				i++
				return []string{args[i]}
			}
			return nil
		}
		switch {
		case a == "--":
			return global, append(rest, args[i:]...)
		case a == "--verbose", strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "--host="), strings.HasPrefix(a, "--hostname="):
			global = append(global, a)
		case a == "--config", a == "--host", a == "--hostname":
			global = append(append(global, a), next()...)
		case pushLongWithValue[a]:
			rest = append(append(rest, a), next()...)
		case strings.HasPrefix(a, "--"), !strings.HasPrefix(a, "-"), a == "-":
			rest = append(rest, a)
		default:
			for j := 1; j < len(a); j++ {
				c := a[j]
				opt := "-" + string(c)
				switch {
				case c == 'v':
					global = append(global, opt)
					continue
				case c == 'c':
					if j+1 < len(a) {
						global = append(global, opt, a[j+1:])
					} else {
						global = append(append(global, opt), next()...)
					}
				case strings.IndexByte(cachixArgShorts, c) >= 0:
					if j+1 < len(a) {
						rest = append(rest, opt+a[j+1:])
					} else {
						rest = append(append(rest, opt), next()...)
					}
				default:
					rest = append(rest, opt) // cachix says what it is not
					continue
				}
				break // the rest of the bundle was the value
			}
		}
	}
	return global, rest
}

// pushLongWithValue are cachix push's long options that take their value
// from the next argument.
var pushLongWithValue = map[string]bool{
	"--compression-method": true, "--compression-level": true, "--chunk-size": true,
	"--num-concurrent-chunks": true, "--jobs": true,
}
