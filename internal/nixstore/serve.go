package nixstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Path infos through `nix-store --serve`, the protocol Nix speaks to
// itself over SSH (Nix's serve-protocol.hh): each path's deriver, size
// and references come as compact binary from read-only processes, and
// we walk the closure ourselves, a level of references at a time. Nix's
// own closure query (cmdQueryClosure) reads every path's infos once to
// walk it and `nix-store --query --requisites` costs the same, so asking
// for the infos level by level reads the database once instead of
// twice; and a level of thousands of paths is shared among a few
// processes (servePool), since Nix answers on one core. Every Nix from
// 2.8 to 2.34 speaks the protocol (2.6-2.7); where the handshake fails,
// PathInfos falls back to `nix path-info --json`.

const (
	serveMagic1 = 0x390c9deb
	serveMagic2 = 0x5452eecb
	// serveVersion is the version we speak: 2.5, whose path infos hold
	// the NAR hash, content address and signatures (minor 4 on).
	serveVersion = 2<<8 | 5

	cmdQueryPathInfos = 2
)

// What one answer may hold: a store path is at most a few hundred
// bytes, a signature about a hundred; a set, a closure's paths. A walk
// holds at most maxServeCount paths in all.
const (
	maxServeString = 64 << 10
	maxServeCount  = 1 << 22
)

// errNoServe is a nix-store that does not speak the serve protocol.
var errNoServe = errors.New("nix-store --serve did not answer the handshake")

// servePathInfos is PathInfos through `nix-store --serve`: the infos of
// the paths that are valid (those that are not come back with Valid
// false) and, with recursive, of their closure.
func (n Nix) servePathInfos(ctx context.Context, recursive bool, paths []string) ([]PathInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, pathInfoTimeout)
	pool := newServePool(ctx, n, serveSessions())
	infos, err := walk(recursive, paths, pool.ask)
	msg := pool.close(err != nil)
	if err != nil {
		cancel()
		if msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, fmt.Errorf("nix-store --serve, %d paths: %w", len(paths), err)
	}
	// The answers are whole (the protocol frames them), so the processes
	// are reaped beside what comes next rather than waited for: one took
	// 14 ms to end after 10,000 infos. The timeout still bounds them.
	go func() {
		pool.reaped()
		cancel()
	}()
	return infos, nil
}

// walk asks for the infos of paths with ask, and with recursive for
// those of what they refer to, breadth-first, one level a call. Paths
// ask does not answer for (not in the store) come back with Valid false.
func walk(recursive bool, paths []string, ask func(level []string) ([]PathInfo, error)) ([]PathInfo, error) {
	seen := make(map[string]bool, len(paths))
	level := make([]string, 0, len(paths))
	for _, p := range paths {
		if !seen[p] {
			seen[p] = true
			level = append(level, p)
		}
	}
	var out []PathInfo
	for len(level) > 0 {
		got, err := ask(level)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = got
		} else {
			out = append(out, got...)
		}
		if !recursive {
			break
		}
		var next []string
		for _, info := range got {
			for _, r := range info.References {
				if !seen[r] {
					seen[r] = true
					next = append(next, r)
				}
			}
		}
		if len(seen) > maxServeCount {
			return nil, fmt.Errorf("nix-store --serve named more than %d paths", maxServeCount)
		}
		level = next
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
	return walk(recursive, paths, c.infos)
}

// infos asks for the infos of paths, which hold no path twice: Nix
// answers for those that are valid and skips the others.
func (c *serveConn) infos(paths []string) ([]PathInfo, error) {
	c.putInt(cmdQueryPathInfos)
	c.putStrings(paths)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	out := make([]PathInfo, 0, len(paths))
	for c.err == nil {
		p := c.string()
		if p == "" {
			break
		}
		info := PathInfo{Path: p, Valid: true, Deriver: c.string(), References: c.strings()}
		c.int() // download size
		info.NarSize = int64(c.int())
		c.string() // NAR hash
		info.CA = c.string() != ""
		info.Signatures = c.strings()
		if info.NarSize < 0 {
			c.fail(fmt.Errorf("%s: NAR size out of range", p))
		}
		out = append(out, info)
	}
	if c.err != nil {
		return nil, c.err
	}
	return out, nil
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
