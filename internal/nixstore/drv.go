package nixstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
)

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

// ErrNoPaths reports a derivation whose outputs have no path yet.
var ErrNoPaths = errors.New("the derivation names no output paths (content-addressed?)")

func parseDrvOutputs(r *bufio.Reader) ([]string, error) {
	p := &aterm{r: r}
	p.expect("Derive([")
	var outs []string
	for p.err == nil {
		p.expect("(")
		p.str() // output name
		p.expect(",")
		path := p.str()
		p.expect(",")
		p.str() // hash algorithm (fixed-output)
		p.expect(",")
		p.str() // hash
		p.expect(")")
		if p.err != nil {
			break
		}
		if path == "" {
			return nil, ErrNoPaths
		}
		outs = append(outs, path)
		if c := p.next(); c == ']' {
			break
		} else if c != ',' && p.err == nil {
			p.err = fmt.Errorf("unexpected %q in the outputs list", c)
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	return outs, nil
}

// aterm reads the little of Nix's ATerm syntax that the outputs need.
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

func (p *aterm) str() string {
	p.expect(`"`)
	var b []byte
	for p.err == nil {
		c := p.next()
		switch c {
		case '"':
			return string(b)
		case '\\':
			c = p.next()
		}
		if b = append(b, c); len(b) > maxString {
			p.err = errors.New("string too long in the outputs list")
		}
	}
	return ""
}
