package pusher

import "os"

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
