// Package upstream asks binary caches whether they already hold store
// paths, so that what an upstream cache (cache.nixos.org, say) serves is
// not pushed again.
//
// A path is asked for as <url>/<hash>.narinfo, the file Nix itself fetches
// first: over HTTP(S) with a GET, with bounded parallelism, a timeout per
// request and a deadline per round of questions; a file:// cache is read
// directly, under the trust rule (package trust) like everything else
// root reads. An upstream has a path only on evidence: a narinfo whose
// StorePath is the very path asked. A 200 that is not one (a captive
// portal, a mistyped URL, a server answering anything with a page) or a
// redirect to another host or scheme counts as not having it, and is
// warned about once. An upstream that does not answer, or not within the
// round's deadline, is reported, never taken to have the path: its paths
// are pushed.
package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// Parallel is how many requests run at once, over all upstreams.
const Parallel = 8

// downFor is how long an upstream that failed to answer is not asked
// again, so that a batch of thousands of paths does not wait for
// thousands of timeouts.
const downFor = time.Minute

// maxKnown bounds the remembered answers (about 100 bytes each).
const maxKnown = 1 << 20

// maxNarinfo bounds what is read of one narinfo: its StorePath line
// comes first, and a narinfo with thousands of references is still far
// below this.
const maxNarinfo = 1 << 20

// Checker asks upstream caches and remembers their answers for its
// lifetime (a worker's): store paths never change, so an answer stays
// true.
type Checker struct {
	client   *http.Client
	deadline time.Duration
	mu       sync.Mutex
	known    map[string]bool // url + " " + hash: whether url has it
	down     map[string]downInfo
	warned   map[string]bool // url + " " + kind of odd answer, warned about
	warnings []string        // not taken yet
	nowFunc  func() time.Time
	// readFile answers for a file:// upstream (askFile); fileReads
	// holds a slot for each read not yet returned (see askFileWithin).
	readFile  func(base, path, hash string) (bool, error)
	fileReads chan struct{}
}

type downInfo struct {
	until time.Time
	why   string
	slow  bool // it was down for passing a round's deadline
}

// New returns a Checker whose HTTP requests each time out after timeout,
// and whose rounds of questions (one Check) end after deadline (0: none).
func New(timeout, deadline time.Duration) *Checker {
	c := &Checker{
		deadline: deadline,
		known:    map[string]bool{},
		down:     map[string]downInfo{},
		warned:   map[string]bool{},
		nowFunc:  time.Now,
		// fileReads: as many reads as questions in flight.
		fileReads: make(chan struct{}, Parallel),
	}
	c.readFile = c.askFile
	c.client = &http.Client{Timeout: timeout, CheckRedirect: sameOrigin}
	return c
}

// errOffsite is a redirect to another host or scheme.
type errOffsite struct{ to string }

func (e *errOffsite) Error() string { return "redirected to " + e.to }

// sameOrigin follows a redirect only within the upstream's own scheme and
// host (a path moved on the same server), at most 5 times: one that leads
// elsewhere is not the upstream answering.
func sameOrigin(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return &errOffsite{to: req.URL.Scheme + "://" + req.URL.Host}
	}
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	return nil
}

// Warnings returns the odd answers seen since the last call, each at most
// once in the Checker's lifetime per upstream and kind: an upstream that
// answers 200 with something that is not the narinfo asked, or redirects
// elsewhere. Its paths were counted as not there (and are pushed).
func (c *Checker) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.warnings
	c.warnings = nil
	return w
}

func (c *Checker) warn(u, kind, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if key := u + " " + kind; !c.warned[key] {
		c.warned[key] = true
		c.warnings = append(c.warnings, fmt.Sprintf("upstream %s %s: counted as not having the path, which is pushed", u, msg))
	}
}

// Result holds the answers of one Check.
type Result struct {
	// Has[url][path] is true when url has path, false when it said it
	// has not; a path it was not asked about, or could not answer for,
	// is absent.
	Has map[string]map[string]bool
	// Unreachable[url] says why url could not answer (some of) its
	// questions.
	Unreachable map[string]string
	// Slow[url] is set when the round's deadline passed before url
	// answered every question: the rest of its paths go unanswered.
	Slow map[string]string
}

// Check asks each upstream url about the store paths listed for it, in
// one round bounded by the Checker's deadline: past it the paths not
// answered yet stay unanswered (and so are pushed), and their upstream is
// Slow, and not asked again for a while.
func (c *Checker) Check(ctx context.Context, asks map[string][]string) Result {
	res := Result{Has: map[string]map[string]bool{}, Unreachable: map[string]string{}, Slow: map[string]string{}}
	type job struct{ url, path, hash string }
	var jobs []job
	c.mu.Lock()
	for u, paths := range asks {
		res.Has[u] = map[string]bool{}
		if d, ok := c.down[u]; ok && c.nowFunc().Before(d.until) {
			res.Unreachable[u] = d.why
			if d.slow {
				res.Slow[u] = d.why
			}
			continue
		}
		for _, p := range paths {
			h := hashOf(p)
			if h == "" {
				continue
			}
			if has, ok := c.known[u+" "+h]; ok {
				res.Has[u][p] = has
				continue
			}
			jobs = append(jobs, job{u, p, h})
		}
	}
	c.mu.Unlock()
	if len(jobs) == 0 {
		return res
	}
	rctx := ctx
	if c.deadline > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.deadline)
		defer cancel()
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards res
	for range min(Parallel, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				mu.Lock()
				_, isDown := res.Unreachable[j.url]
				mu.Unlock()
				if isDown {
					continue
				}
				has, err := c.ask(rctx, j.url, j.path, j.hash)
				if err != nil && rctx.Err() != nil {
					continue // the round is over: said below
				}
				mu.Lock()
				if err != nil {
					if _, ok := res.Unreachable[j.url]; !ok {
						res.Unreachable[j.url] = said(err.Error())
					}
				} else {
					res.Has[j.url][j.path] = has
				}
				mu.Unlock()
				c.mu.Lock()
				if err != nil {
					c.down[j.url] = downInfo{until: c.nowFunc().Add(downFor), why: said(err.Error())}
				} else {
					if len(c.known) >= maxKnown {
						c.known = map[string]bool{}
					}
					c.known[j.url+" "+j.hash] = has
				}
				c.mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-rctx.Done():
		}
		if rctx.Err() != nil {
			break
		}
	}
	close(ch)
	wg.Wait()
	if rctx.Err() == nil {
		return res
	}
	for u := range asks {
		if _, ok := res.Unreachable[u]; ok {
			continue
		}
		left := 0
		for _, j := range jobs {
			if _, answered := res.Has[u][j.path]; j.url == u && !answered {
				left++
			}
		}
		if left == 0 {
			continue
		}
		if ctx.Err() != nil {
			res.Unreachable[u] = ctx.Err().Error()
			continue
		}
		why := fmt.Sprintf("slow: %d of its %d paths not answered within upstream_deadline (%s)", left, len(asks[u]), c.deadline)
		res.Unreachable[u], res.Slow[u] = why, why
		c.mu.Lock()
		c.down[u] = downInfo{c.nowFunc().Add(downFor), why, true}
		c.mu.Unlock()
	}
	return res
}

// ask asks one upstream whether it has path (whose hash part is hash).
func (c *Checker) ask(ctx context.Context, base, path, hash string) (bool, error) {
	if strings.HasPrefix(base, "file://") {
		return c.askFileWithin(ctx, base, path, hash)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/"+hash+".narinfo", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var off *errOffsite
		if errors.As(err, &off) {
			c.warn(base, "redirect", "redirected "+hash+".narinfo to another host or scheme ("+cut(off.to)+")")
			return false, nil
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said by the caller
		}
		if msg := err.Error(); len(msg) > maxSaid {
			// net/http quotes a malformed answer in its error.
			err = errors.New(cut(msg))
		}
		return false, err
	}
	defer func() {
		// Drained (boundedly), so that the connection serves the next
		// question.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxNarinfo))
		resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden, http.StatusGone:
		// S3 answers 403 for a key that does not exist.
		return false, nil
	default:
		return false, fmt.Errorf("HTTP %s", cut(resp.Status))
	}
	got, err := storePathOf(resp.Body)
	if err != nil {
		return false, fmt.Errorf("reading %s.narinfo: %w", hash, err)
	}
	if got != path {
		what := "no StorePath"
		if got != "" {
			what = "StorePath " + cut(got)
		}
		ct := cut(resp.Header.Get("Content-Type"))
		if ct == "" {
			ct = "no Content-Type"
		}
		c.warn(base, "not-narinfo", fmt.Sprintf("answered 200 for %s.narinfo with %s (%s), not %s", hash, what, ct, path))
		return false, nil
	}
	return true, nil
}

// askFileWithin is askFile bounded as a request is: by ctx (the round's
// deadline) and upstream_timeout. A read of a hung mount (NFS) cannot be
// interrupted, so it is left to end on its own; it keeps its slot until
// then, so that a mount hung for days holds Parallel threads, not more
// with each round.
func (c *Checker) askFileWithin(ctx context.Context, base, path, hash string) (bool, error) {
	timeout := c.client.Timeout
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	late := func() error {
		if ctx.Err() == context.DeadlineExceeded && timeout > 0 {
			return fmt.Errorf("reading %s.narinfo: no answer within upstream_timeout (%s)", hash, timeout)
		}
		return ctx.Err()
	}
	if ctx.Err() != nil {
		return false, late()
	}
	select {
	case c.fileReads <- struct{}{}:
	case <-ctx.Done():
		return false, late()
	}
	type answer struct {
		has bool
		err error
	}
	done := make(chan answer, 1)
	go func() {
		defer func() { <-c.fileReads }()
		has, err := c.readFile(base, path, hash)
		done <- answer{has, err}
	}()
	select {
	case a := <-done:
		return a.has, a.err
	case <-ctx.Done():
		return false, late()
	}
}

// askFile reads <dir>/<hash>.narinfo of a file:// cache, opened under the
// trust rule: a narinfo someone else could plant there (a directory they
// can write) is no evidence, and the refusal says so.
func (c *Checker) askFile(base, path, hash string) (bool, error) {
	u, err := url.Parse(base)
	if err != nil {
		return false, err
	}
	name := filepath.Join(u.Path, hash+".narinfo")
	if err := trust.CheckParents(name); err != nil {
		if trust.IsRefusal(err) {
			return false, err
		}
		return false, fmt.Errorf("reading %s: %w", u.Path, err)
	}
	f, err := trust.Open(name, trust.File)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	defer f.Close()
	got, err := storePathOf(f)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", name, err)
	}
	if got != path {
		c.warn(base, "not-narinfo", fmt.Sprintf("has a %s.narinfo that does not name %s", hash, path))
		return false, nil
	}
	return true, nil
}

// maxSaid bounds what of an upstream's own words (a reason phrase, a
// Content-Type, a StorePath) a message quotes: net/http takes a header
// of up to 10 MiB, and the message is logged every round.
const maxSaid = 256

// cut returns s, or its first maxSaid bytes (whole runes) and "...",
// escaped as said escapes.
func cut(s string) string {
	if len(s) > maxSaid {
		// Before a UTF-8 character rather than inside it: at most
		// UTFMax-1 bytes back, as s may be no UTF-8 at all.
		n := maxSaid
		for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
			n--
		}
		s = s[:n] + "..."
	}
	return said(s)
}

// said writes s's control characters, bytes that are not UTF-8, tabs
// and newlines as escapes (\x1b, \x9b, \u202e), as escape.Controls does
// for the rest of the output: explain prints the message to a terminal,
// where they would move the cursor, recolour or reverse the line, and
// the message is one line.
func said(s string) string {
	return escape.Controls(strings.NewReplacer("\t", `\x09`, "\n", `\x0a`).Replace(s))
}

// storePathOf returns the StorePath of a narinfo ("" when it has none),
// reading at most maxNarinfo bytes.
func storePathOf(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxNarinfo))
	sc.Buffer(make([]byte, 4096), maxNarinfo)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "StorePath: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", sc.Err()
}

// hashOf returns the 32-character hash of a store path, or "".
func hashOf(p string) string {
	base := filepath.Base(p)
	if len(base) < 33 || base[32] != '-' {
		return ""
	}
	return base[:32]
}
