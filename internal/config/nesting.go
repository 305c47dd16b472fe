package config

import (
	"bytes"
	"fmt"
)

// MaxNesting bounds how deeply arrays and inline tables nest in hook.conf,
// which needs two levels at most ([[target]] holding a list). The TOML
// parser builds every level: 400,000 nested arrays in a 0.8 MB file made
// it take 520 MB and 2 s, in the hook, as root, on every build.
const MaxNesting = 32

// checkNesting refuses data whose arrays or inline tables nest deeper than
// MaxNesting, before any parsing. It skips strings and comments, so a
// bracket in a pattern or a key counts for nothing. One pass, no memory.
func checkNesting(file string, data []byte) error {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			j := bytes.IndexByte(data[i:], '\n')
			if j < 0 {
				return nil
			}
			i += j - 1 // the newline is counted next
		case '"', '\'':
			var n int
			i, n = skipString(data, i)
			line += n
		case '[', '{':
			if depth++; depth > MaxNesting {
				return fmt.Errorf("%s: line %d: arrays and inline tables nest deeper than %d levels, the most hook.conf may use (it needs 2)", file, line, MaxNesting)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

// skipString returns the index of the last byte of the string that starts
// at data[i] (basic "...", literal '...', or their multi-line forms with
// three quotes), and how many newlines it holds. An unterminated string runs to
// the end of its line (or of the data, when multi-line): the parser
// reports it.
func skipString(data []byte, i int) (end, newlines int) {
	q := data[i]
	escapes := q == '"'
	if bytes.HasPrefix(data[i:], []byte{q, q, q}) {
		delim := []byte{q, q, q}
		for j := i + 3; j < len(data); j++ {
			switch {
			case escapes && data[j] == '\\':
				if j+1 < len(data) && data[j+1] == '\n' {
					newlines++
				}
				j++
			case data[j] == '\n':
				newlines++
			case bytes.HasPrefix(data[j:], delim):
				// Up to two more quotes may close it ("""a"""").
				j += 2
				for k := 0; k < 2 && j+1 < len(data) && data[j+1] == q; k++ {
					j++
				}
				return j, newlines
			}
		}
		return len(data) - 1, newlines
	}
	for j := i + 1; j < len(data); j++ {
		switch {
		case escapes && data[j] == '\\':
			if j+1 < len(data) && data[j+1] == '\n' {
				return j, 0
			}
			j++
		case data[j] == q:
			return j, 0
		case data[j] == '\n':
			return j - 1, 0
		}
	}
	return len(data) - 1, 0
}
