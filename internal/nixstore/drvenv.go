package nixstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
)

// maxDrvSize bounds a .drv file read whole: derivations are a few KiB;
// the largest in nixpkgs (with big inline env strings) are a few MiB.
const maxDrvSize = 32 << 20

// Drv is what the tool reads from a .drv file.
type Drv struct {
	// Outputs are the output paths, in the file's order ("" for a
	// content-addressed output, which has none yet).
	Outputs []string
	// AllowSubstitutes is false when the derivation sets
	// allowSubstitutes = false: Nix builds it locally rather than
	// download it, so pushing it helps nobody.
	AllowSubstitutes bool
}

// ReadDrv parses a whole .drv file (Nix's ATerm form):
//
//	Derive(outputs, inputDrvs, inputSrcs, platform, builder, args, env)
//
// Nix writes allowSubstitutes = false into env as "allowSubstitutes" = ""
// (true as "1"), or, with __structuredAttrs, as a JSON boolean in the
// "__json" entry. Nix itself treats any value but "1" as false.
func ReadDrv(path string) (*Drv, error) {
	// Not blocking on a FIFO, regular files only, bounded.
	f, _, err := safeopen.Open(path, safeopen.Options{NoFollow: true, MaxSize: maxDrvSize})
	if err != nil {
		return nil, fmt.Errorf("reading derivation: %w", err)
	}
	defer f.Close()
	d, err := parseDrv(bufio.NewReaderSize(io.LimitReader(f, maxDrvSize), 16<<10))
	if err != nil {
		return nil, fmt.Errorf("reading derivation %s: %w", path, err)
	}
	return d, nil
}

func parseDrv(r *bufio.Reader) (*Drv, error) {
	p := &aterm{r: r}
	d := &Drv{AllowSubstitutes: true}
	p.expect("Derive([")
	for p.err == nil {
		p.expect("(")
		p.str() // output name
		p.expect(",")
		d.Outputs = append(d.Outputs, p.str())
		p.expect(",")
		p.str()
		p.expect(",")
		p.str()
		p.expect(")")
		if !p.more(']') {
			break
		}
	}
	p.expect(",")
	p.skip() // inputDrvs
	p.expect(",")
	p.skip() // inputSrcs
	p.expect(",")
	p.skip() // platform
	p.expect(",")
	p.skip() // builder
	p.expect(",")
	p.skip() // args
	p.expect(",[")
	if p.peek() == ']' {
		p.next()
	} else {
		for p.err == nil {
			p.expect("(")
			k := p.strMax(maxDrvSize)
			p.expect(",")
			switch k {
			case "allowSubstitutes":
				d.AllowSubstitutes = p.strMax(maxDrvSize) == "1"
			case "__json":
				var attrs struct {
					AllowSubstitutes *bool `json:"allowSubstitutes"`
				}
				if js := p.strMax(maxDrvSize); p.err == nil {
					// A value that is not a boolean is an error for
					// Nix; here it leaves the default.
					if json.Unmarshal([]byte(js), &attrs) == nil && attrs.AllowSubstitutes != nil {
						d.AllowSubstitutes = *attrs.AllowSubstitutes
					}
				}
			default:
				p.skip()
			}
			p.expect(")")
			if !p.more(']') {
				break
			}
		}
	}
	p.expect(")")
	if p.err != nil {
		return nil, p.err
	}
	return d, nil
}

// more reads the separator after a list element: true after ',', false at
// the list's end.
func (p *aterm) more(end byte) bool {
	switch c := p.next(); {
	case p.err != nil:
		return false
	case c == ',':
		return true
	case c == end:
		return false
	default:
		p.err = fmt.Errorf("unexpected %q in a list", c)
		return false
	}
}

func (p *aterm) peek() byte {
	if p.err != nil {
		return 0
	}
	b, err := p.r.Peek(1)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		p.err = err
		return 0
	}
	return b[0]
}

// maxDepth bounds the nesting skip follows: a .drv nests three deep.
const maxDepth = 16

// skip reads one value (string, list or tuple) and discards it.
func (p *aterm) skip() { p.skipDepth(0) }

func (p *aterm) skipDepth(depth int) {
	if depth > maxDepth {
		p.err = errors.New("derivation nested too deeply")
		return
	}
	switch c := p.peek(); c {
	case '"':
		p.skipStr()
	case '[', '(':
		p.next()
		end := byte(']')
		if c == '(' {
			end = ')'
		}
		if p.peek() == end {
			p.next()
			return
		}
		for p.err == nil {
			p.skipDepth(depth + 1)
			if !p.more(end) {
				return
			}
		}
	default:
		if p.err == nil {
			p.err = fmt.Errorf("not a derivation: unexpected %q", c)
		}
	}
}

// skipStr reads a string without keeping it.
func (p *aterm) skipStr() {
	p.expect(`"`)
	for p.err == nil {
		switch p.next() {
		case '"':
			return
		case '\\':
			p.next()
		}
	}
}

// strMax reads a string of at most n bytes; a longer one is an error.
func (p *aterm) strMax(n int) string {
	p.expect(`"`)
	var b []byte
	for p.err == nil {
		c := p.next()
		switch c {
		case '"':
			return string(b)
		case '\\':
			c = p.next()
			switch c {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			}
		}
		if b = append(b, c); len(b) > n {
			p.err = fmt.Errorf("string longer than %d bytes in the derivation", n)
		}
	}
	return ""
}
