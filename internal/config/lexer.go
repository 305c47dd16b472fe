package config

import (
	"bytes"
	"fmt"
	"strings"
)

// The bounded pre-checks. Before any parser sees hook.conf (the hook runs
// as root on every build), one pass over its bytes by TOML's lexical rules
// measures how deeply it nests, building nothing; StrictRequested reads
// `strict = true` with the same pass when the file is no TOML at all.

// MaxNesting bounds how deeply hook.conf nests: every part of a table
// header and of a dotted key past the first, and every array and inline
// table, is a level (`[a.b]` then `c.d = [[1]]` is 5). hook.conf needs 3
// at most ([[target]] holding a list). The TOML parser builds every level:
// 400,000 nested arrays in a 0.8 MB file made it take 520 MB and 2 s,
// 40,000 dotted parts in 80 KB 2.8 GB and 7 s.
const MaxNesting = 32

// A table with many keys costs the TOML parser quadratic time (it looks
// each new key up among its siblings): 100,000 keys of one table in a
// 1 MiB file would take it minutes. hook.conf's largest table has 15.
// Array elements cost the parser and the loader some 3 µs each
// (a pattern 10 µs to compile): 500,000 took 1.5 s.
const (
	maxTableKeys = 100    // keys of one [table] (or the top level), or of one inline table
	maxTables    = 1000   // [table] and [[table]] headers in the file
	maxKeys      = 10_000 // keys in the file
	maxElements  = 20_000 // array elements in the file
)

// lexKey is a key the lexer met: a table header, or a key = value.
type lexKey struct {
	line   int
	table  bool   // a [table] or [[table]] header
	array  bool   // a [[table]] header
	top    bool   // a key before any table header, outside inline tables
	inline bool   // a key of an inline table
	parts  int    // dotted parts
	name   []byte // the first part, unquoted
	value  []byte // for a top-level strict: its value when a bare word (true)
	// path is every part, unquoted, when the visitor asked for it
	// (keyLines): messages name the line of a key.
	path [][]byte
}

// errStop ends a lex early without an error.
var errStop = fmt.Errorf("stop")

// lex passes over data once, calling visit (which may be nil) for every
// key, and fails when the nesting passes MaxNesting. It never fails on
// what is not TOML (the parser says what is wrong): it reads on, in
// linear time, and a string left open ends at its line's end.
func lex(file string, data []byte, visit func(lexKey) error) error {
	return lexWith(file, data, visit, false)
}

// lexWith is lex, with each key's parts in lexKey.path when paths.
func lexWith(file string, data []byte, visit func(lexKey) error, paths bool) error {
	var withPaths [][]byte
	if paths {
		withPaths = [][]byte{}
	}
	type open struct {
		inline bool // an inline table (keys inside), else an array
		depth  int  // the nesting inside it
		keys   int  // keys of an inline table
	}
	var stack []open
	line, table := 1, 0  // table: the nesting of the current table header
	tables, keys := 0, 0 // headers so far; keys of the current table
	allKeys := 0
	elements := 0 // array elements so far, counted by their commas
	tooDeep := func(what string) error {
		return fmt.Errorf("%s: line %d: %s nest deeper than %d levels, the most hook.conf may use (it needs 3)", file, line, what, MaxNesting)
	}
	expectKey := true // at a line's start, or after { or , in an inline table
	depth := 0        // the nesting of the value being read
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			line++
			if len(stack) == 0 {
				expectKey = true
			}
			continue
		case c == ' ' || c == '\t' || c == '\r':
			continue
		case c == '#':
			j := bytes.IndexByte(data[i:], '\n')
			if j < 0 {
				return nil
			}
			i += j - 1 // the newline is counted next
			continue
		}
		if expectKey && len(stack) == 0 && c == '[' {
			// A table header: [a.b] or [[a.b]].
			i++
			k := lexKey{line: line, table: true, path: withPaths}
			if i < len(data) && data[i] == '[' {
				i++
				k.array = true
			}
			i = keyParts(data, i, &k, &line)
			if k.parts > MaxNesting {
				return tooDeep("table headers")
			}
			table = k.parts
			if tables, keys = tables+1, 0; tables > maxTables {
				return fmt.Errorf("%s: line %d: more than %d tables, the most hook.conf may have", file, line, maxTables)
			}
			if visit != nil {
				if err := visit(k); err != nil {
					return err
				}
			}
			// The rest of the line: ] or ]] and a comment.
			expectKey = false
			for i < len(data) && data[i] != '\n' && data[i] != '#' {
				i++
			}
			i--
			continue
		}
		if expectKey && c != ',' && c != '}' && c != ']' {
			k := lexKey{line: line, top: len(stack) == 0 && table == 0, inline: len(stack) > 0, path: withPaths}
			i = keyParts(data, i, &k, &line)
			base, n := table, &keys
			if len(stack) > 0 {
				base, n = stack[len(stack)-1].depth, &stack[len(stack)-1].keys
			}
			if *n++; *n > maxTableKeys {
				return fmt.Errorf("%s: line %d: more than %d keys in one table, the most hook.conf may have", file, line, maxTableKeys)
			}
			if allKeys++; allKeys > maxKeys {
				return fmt.Errorf("%s: line %d: more than %d keys, the most hook.conf may have", file, line, maxKeys)
			}
			if depth = base + k.parts - 1; depth > MaxNesting {
				return tooDeep("dotted keys")
			}
			if k.top && string(k.name) == "strict" {
				k.value = bareValue(data[i:])
			}
			if visit != nil {
				if err := visit(k); err != nil {
					return err
				}
			}
			expectKey = false
			if i < len(data) && data[i] == '\n' {
				i-- // a key without '=': the newline is counted next
			}
			continue // i is at the '='
		}
		switch c {
		case '"', '\'':
			var n int
			i, n = skipString(data, i)
			line += n
		case '[', '{':
			if depth++; depth > MaxNesting {
				return tooDeep("arrays and inline tables")
			}
			stack = append(stack, open{inline: c == '{', depth: depth})
			expectKey = c == '{'
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			depth = table
			if len(stack) > 0 {
				depth = stack[len(stack)-1].depth
			}
			expectKey = false
		case ',':
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				depth, expectKey = top.depth, top.inline
				if elements++; !top.inline && elements > maxElements {
					return fmt.Errorf("%s: line %d: more than %d array elements, the most hook.conf may have", file, line, maxElements)
				}
			}
		}
	}
	return nil
}

// keyParts reads a key from data[i:] up to its '=' (or, in a table
// header, its ']'), counting its dotted parts into k; it returns the
// index of the byte that ended it. A key that runs into a newline ends
// there.
func keyParts(data []byte, i int, k *lexKey, line *int) int {
	k.parts = 1
	for ; i < len(data); i++ {
		switch c := data[i]; {
		case c == '=' || c == ']' || c == '\n':
			return i
		case c == '.':
			k.parts++
		case c == '"' || c == '\'':
			end, n := skipString(data, i)
			if k.parts == 1 && k.name == nil && end > i {
				k.name = data[i+1 : end]
			}
			if k.path != nil && end > i {
				k.path = append(k.path, data[i+1:end])
			}
			*line += n
			i = end
		case isBare(c):
			j := i
			for j < len(data) && isBare(data[j]) {
				j++
			}
			if k.parts == 1 && k.name == nil {
				k.name = data[i:j]
			}
			if k.path != nil {
				k.path = append(k.path, data[i:j])
			}
			i = j - 1
		}
	}
	return i
}

func isBare(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// bareValue returns the bare word after a key's '=' (true, 42), nil for a
// string, array or table.
func bareValue(rest []byte) []byte {
	if len(rest) == 0 || rest[0] != '=' {
		return nil
	}
	rest = bytes.TrimLeft(rest[1:], " \t")
	end := bytes.IndexAny(rest, " \t\r\n#,]}")
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
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

// keyLines maps each key of data to the line it is on, as the loader's
// messages name keys: "queue.dir", "allow", "target[1].deny" (the second
// [[target]]). Keys of inline tables are not in it: their table's line
// stands for them. Only for messages: the lexer has already passed data.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	table := ""
	arrays := map[string]int{} // [[name]] headers seen
	join := func(parts [][]byte) string {
		s := make([]string, len(parts))
		for i, p := range parts {
			s[i] = string(p)
		}
		return strings.Join(s, ".")
	}
	_ = lexWith("", data, func(k lexKey) error {
		switch {
		case k.table && k.array:
			name := join(k.path)
			table = fmt.Sprintf("%s[%d]", name, arrays[name])
			arrays[name]++
		case k.table:
			table = join(k.path)
		case k.inline:
			return nil
		default:
			key := join(k.path)
			if table != "" {
				key = table + "." + key
			}
			if _, seen := lines[key]; !seen {
				lines[key] = k.line
			}
			return nil
		}
		if _, seen := lines[table]; !seen {
			lines[table] = k.line
		}
		return nil
	}, true)
	return lines
}

// checkNesting refuses data that nests deeper than MaxNesting, before any
// parsing.
func checkNesting(file string, data []byte) error { return lex(file, data, nil) }

// strictLexed reports whether data sets `strict = true` before any table
// header, read by the lexer alone: for a file that is no TOML.
func strictLexed(data []byte) bool {
	strict := false
	_ = lex("", data, func(k lexKey) error {
		if k.table {
			return errStop
		}
		if k.top && k.parts == 1 && string(k.name) == "strict" && string(k.value) == "true" {
			strict = true
			return errStop
		}
		return nil
	})
	return strict
}

// repeatLine is the line of the first key (or, when header, [table]
// header) named name that names again what a key or header before it
// named: the parser refuses it ("key deny is already defined", "table
// queue already exists") without a line, nor which [[target]] it is in.
// 0 when there is none: the parser's other conflicts (a [queue] after
// queue.dir = ...) keep their message alone.
func repeatLine(data []byte, name string, header bool) int {
	seen := map[string]bool{}
	arrays := map[string]int{} // [[name]] headers seen
	table, found := "", 0
	_ = lexWith("", data, func(k lexKey) error {
		if k.inline {
			return nil
		}
		path := table
		if k.table {
			path = ""
		}
		for i, p := range k.path {
			if path != "" {
				path += "."
			}
			path += string(p)
			// A part under a [[name]] is in its last table.
			if n, ok := arrays[path]; ok && !(k.array && i == len(k.path)-1) {
				path += fmt.Sprintf("[%d]", n-1)
			}
		}
		if k.array {
			arrays[path]++
			table = fmt.Sprintf("%s[%d]", path, arrays[path]-1)
			return nil
		}
		if k.table {
			table = path
		}
		if seen[path] && k.table == header && len(k.path) > 0 && string(k.path[len(k.path)-1]) == name {
			found = k.line
			return errStop
		}
		seen[path] = true
		return nil
	}, true)
	return found
}
