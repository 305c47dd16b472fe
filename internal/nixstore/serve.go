package nixstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Path infos through `nix-store --serve`, the protocol Nix speaks to
// itself over SSH (Nix's serve-protocol.hh): the closure walk and each
// path's deriver, size and references come as compact binary from one
// read-only process. For a 10,000-path closure this costs about what
// `nix-store --query --requisites` costs (454 ms against 423 ms, where
// `nix path-info --recursive --json` took 523 ms: hyperfine -N, 10 runs,
// bench/closure.nix's root), since Nix no longer prints 3 MB of JSON and
// we no longer parse it (issue 22). Every Nix from 2.8 to 2.34 speaks it
// (protocol 2.6-2.7); where the handshake fails, PathInfos falls back to
// `nix path-info --json`.

const (
	serveMagic1 = 0x390c9deb
	serveMagic2 = 0x5452eecb
	// serveVersion is the version we speak: 2.5, whose path infos hold
	// the NAR hash, content address and signatures (minor 4 on).
	serveVersion = 2<<8 | 5

	cmdQueryValidPaths = 1
	cmdQueryPathInfos  = 2
	cmdQueryClosure    = 7
)

// What one answer may hold: a store path is at most a few hundred
// bytes, a signature about a hundred; a set, a closure's paths.
const (
	maxServeString = 64 << 10
	maxServeCount  = 1 << 22
)

// errNoServe is a nix-store that does not speak the serve protocol.
var errNoServe = errors.New("nix-store --serve did not answer the handshake")

// servePathInfos is PathInfos through one `nix-store --serve` process:
// the paths that are valid (those that are not come back with Valid
// false), with recursive their closure, then the infos of all of them.
func (n Nix) servePathInfos(ctx context.Context, recursive bool, paths []string) ([]PathInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, pathInfoTimeout)
	reaped := false
	defer func() {
		if !reaped {
			cancel()
		}
	}()
	cmd := n.command(ctx, "nix-store", "--serve", "--option", "substituters", "")
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	var stderr tail
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nix-store --serve: %w", err)
	}
	c := &serveConn{r: bufio.NewReaderSize(io.LimitReader(stdout, maxInfoOutput), 64<<10), w: bufio.NewWriter(stdin)}
	infos, err := c.pathInfos(recursive, paths)
	stdin.Close() // the server ends at the end of its input
	if err == nil {
		// The answer is whole (the protocol frames it), so the process
		// is reaped beside what comes next rather than waited for: its
		// exit took 14 ms after 10,000 infos. The timeout still bounds
		// it.
		reaped = true
		go func() {
			_ = cmd.Wait()
			cancel()
		}()
		return infos, nil
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	return nil, fmt.Errorf("nix-store --serve, %d paths: %w: %s", len(paths), errors.Join(err, werr), strings.TrimSpace(stderr.String()))
}

// serveConn is the client side of one serve session.
type serveConn struct {
	r   *bufio.Reader
	w   *bufio.Writer
	err error // the first read error; later reads return zero values
}

func (c *serveConn) pathInfos(recursive bool, paths []string) ([]PathInfo, error) {
	if err := c.handshake(); err != nil {
		return nil, err
	}
	return c.query(recursive, paths)
}

// handshake opens the session: magic numbers, then protocol versions.
func (c *serveConn) handshake() error {
	c.putInt(serveMagic1)
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errNoServe, err)
	}
	if m := c.int(); c.err != nil || m != serveMagic2 {
		return errNoServe
	}
	if v := c.int(); c.err != nil || v>>8 != 2 || v&0xff < 4 {
		return fmt.Errorf("%w: it speaks protocol %d.%d, not 2.4 or later", errNoServe, v>>8, v&0xff)
	}
	c.putInt(serveVersion)
	return nil
}

// query asks an open session for the infos of paths (the valid ones, and
// with recursive their closure).
func (c *serveConn) query(recursive bool, paths []string) ([]PathInfo, error) {
	valid := paths
	if recursive {
		// A path not in the store would end the session (the closure
		// query fails on it): ask which are, first.
		c.putInt(cmdQueryValidPaths)
		c.putInt(0) // lock
		c.putInt(0) // substitute
		c.putStrings(paths)
		valid = c.call(c.strings)
		if len(valid) > 0 {
			c.putInt(cmdQueryClosure)
			c.putInt(0) // include outputs
			c.putStrings(valid)
			valid = c.call(c.strings)
		}
	}
	var out []PathInfo
	if len(valid) > 0 {
		c.putInt(cmdQueryPathInfos)
		c.putStrings(valid)
		if err := c.w.Flush(); err != nil {
			return nil, err
		}
		out = make([]PathInfo, 0, len(valid))
		for c.err == nil {
			p := c.string()
			if p == "" {
				break
			}
			info := PathInfo{Path: p, Valid: true, Deriver: c.string(), References: c.strings()}
			c.int() // download size
			info.NarSize = int64(c.int())
			c.string() // NAR hash
			c.string() // content address
			info.Signatures = c.strings()
			if info.NarSize < 0 {
				c.fail(fmt.Errorf("%s: NAR size out of range", p))
			}
			out = append(out, info)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	// Those asked about that Nix did not know (a set of what was asked,
	// a root or a batch, not of a whole closure).
	missing := make(map[string]bool, len(paths))
	for _, p := range paths {
		missing[p] = true
	}
	for _, info := range out {
		delete(missing, info.Path)
	}
	for _, p := range paths {
		if missing[p] {
			out = append(out, PathInfo{Path: p})
			delete(missing, p)
		}
	}
	return out, nil
}

// call flushes the request and reads its answer with read.
func (c *serveConn) call(read func() []string) []string {
	if err := c.w.Flush(); err != nil {
		c.fail(err)
		return nil
	}
	return read()
}

func (c *serveConn) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *serveConn) putInt(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	c.w.Write(b[:])
}

func (c *serveConn) putStrings(ss []string) {
	c.putInt(uint64(len(ss)))
	var pad [8]byte
	for _, s := range ss {
		c.putInt(uint64(len(s)))
		c.w.WriteString(s)
		c.w.Write(pad[:(8-len(s)%8)%8])
	}
}

func (c *serveConn) int() uint64 {
	if c.err != nil {
		return 0
	}
	var b [8]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		c.fail(fmt.Errorf("reading nix-store --serve: %w", err))
		return 0
	}
	return binary.LittleEndian.Uint64(b[:])
}

func (c *serveConn) string() string {
	n := c.int()
	if c.err != nil {
		return ""
	}
	if n > maxServeString {
		c.fail(fmt.Errorf("nix-store --serve sent a string of %d bytes (at most %d)", n, maxServeString))
		return ""
	}
	b := make([]byte, (n+7)&^7)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.fail(fmt.Errorf("reading nix-store --serve: %w", err))
		return ""
	}
	if slices.ContainsFunc(b[n:], func(x byte) bool { return x != 0 }) {
		c.fail(errors.New("nix-store --serve: bad padding"))
		return ""
	}
	return string(b[:n])
}

func (c *serveConn) strings() []string {
	n := c.int()
	if c.err != nil {
		return nil
	}
	if n > maxServeCount {
		c.fail(fmt.Errorf("nix-store --serve sent a set of %d strings (at most %d)", n, maxServeCount))
		return nil
	}
	// Grown as read: the count is the other side's word.
	out := make([]string, 0, min(n, 1<<16))
	for i := uint64(0); i < n && c.err == nil; i++ {
		out = append(out, c.string())
	}
	return out
}
