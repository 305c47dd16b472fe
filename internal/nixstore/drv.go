package nixstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
)

// The one reader of .drv files (Nix's ATerm form):
//
//	Derive(outputs, inputDrvs, inputSrcs, platform, builder, args, env)
//
// DrvOutputs reads the outputs list at its start, ReadDrv the whole file.

// DrvOutputs reads the output paths of a derivation from its .drv file.
//
// The hook needs the outputs when Nix 2.8 passes OUT_PATHS empty
// (NixOS/nix#6446). Asking `nix-store --query --outputs` costs an exec and
// a database open, about 25 ms on every build; the .drv file, written by
// Nix into the store, lists them at its start:
//
//	Derive([("out","/nix/store/…-hello-2.12.1","",""),("doc",…)],…
//
// Only that list is read. A content-addressed derivation has no output
// paths there; it returns ErrNoPaths, and the caller asks Nix.
func DrvOutputs(drv string) ([]string, error) {
	// Only the start is read, so no size limit; but a FIFO or device
	// put in DRV_PATH must not block the hook.
	f, _, err := safeopen.Open(drv, safeopen.Options{NoFollow: true})
	if err != nil {
		return nil, fmt.Errorf("reading derivation: %w", err)
	}
	defer f.Close()
	outs, err := parseDrvOutputs(bufio.NewReaderSize(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("reading derivation %s: %w", drv, err)
	}
	return outs, nil
}

func parseDrvOutputs(r *bufio.Reader) ([]string, error) {
	d, err := parseDrv(r, true)
	if err != nil {
		return nil, err
	}
	for _, o := range d.Outputs {
		if o == "" {
			return nil, ErrNoPaths
		}
	}
	return d.Outputs, nil
}

// ErrNoPaths reports a derivation whose outputs have no path yet.
var ErrNoPaths = errors.New("the derivation names no output paths (content-addressed?)")

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
	d, err := parseDrv(bufio.NewReaderSize(io.LimitReader(f, maxDrvSize), 16<<10), false)
	if err != nil {
		return nil, fmt.Errorf("reading derivation %s: %w", path, err)
	}
	return d, nil
}

// parseDrv parses a .drv; with outputsOnly, it stops after the outputs.
func parseDrv(r *bufio.Reader, outputsOnly bool) (*Drv, error) {
	p := &aterm{r: r}
	d := &Drv{AllowSubstitutes: true}
	p.expect("Derive([")
	for p.err == nil {
		p.expect("(")
		p.str() // output name
		p.expect(",")
		d.Outputs = append(d.Outputs, p.str())
		p.expect(",")
		p.str() // hash algorithm (fixed-output)
		p.expect(",")
		p.str() // hash
		p.expect(")")
		if !p.more(']') {
			break
		}
	}
	if outputsOnly {
		if p.err != nil {
			return nil, p.err
		}
		return d, nil
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
	// A derivation with structured attributes (an env entry "__json")
	// has its allowSubstitutes in that JSON alone: Nix then reads no
	// other env entry for it, so one named allowSubstitutes, which sorts
	// after "__json", must not overrule it.
	var envAllow, jsonAllow *bool
	structured := false
	if p.peek() == ']' {
		p.next()
	} else {
		for p.err == nil {
			p.expect("(")
			k := p.strMax(maxDrvSize)
			p.expect(",")
			switch k {
			case "allowSubstitutes":
				v := p.strMax(maxDrvSize) == "1"
				envAllow = &v
			case "__json":
				structured = true
				// Nix looks the key up as spelt: a struct field
				// would also take "allowsubstitutes", which a user's
				// derivation may set too, and which sorts after it.
				var attrs map[string]json.RawMessage
				if js := p.strMax(maxDrvSize); p.err == nil {
					// A value that is not a boolean is an error for
					// Nix; here it leaves the default.
					var v *bool
					if json.Unmarshal([]byte(js), &attrs) == nil && json.Unmarshal(attrs["allowSubstitutes"], &v) == nil {
						jsonAllow = v
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
	if structured {
		envAllow = jsonAllow
	}
	if envAllow != nil {
		d.AllowSubstitutes = *envAllow
	}
	return d, nil
}

// aterm reads the little of Nix's ATerm syntax the tool needs.
type aterm struct {
	r   *bufio.Reader
	err error
}

func (p *aterm) next() byte {
	if p.err != nil {
		return 0
	}
	c, err := p.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		p.err = err
	}
	return c
}

func (p *aterm) expect(s string) {
	for i := 0; i < len(s) && p.err == nil; i++ {
		if c := p.next(); c != s[i] && p.err == nil {
			p.err = fmt.Errorf("not a derivation: expected %q, got %q", s[i], c)
		}
	}
}

// maxString bounds a string in the outputs list: they are names, store
// paths and hashes.
const maxString = 4096

func (p *aterm) str() string { return p.strMax(maxString) }

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
			p.err = fmt.Errorf("string too long (over %d bytes) in the derivation", n)
		}
	}
	return ""
}
