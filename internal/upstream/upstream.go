// Package upstream asks binary caches whether they already hold store
// paths, so that what an upstream cache (cache.nixos.org, say) serves is
// not pushed again.
//
// A path is asked for as <url>/<hash>.narinfo, the file Nix itself fetches
// first: over HTTP(S) with a HEAD request, with bounded parallelism and a
// timeout per request; a file:// cache is looked at directly. An upstream
// that does not answer is reported, never treated as having the path: a
// path is left out only when an upstream said it has it.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Parallel is how many requests run at once, over all upstreams.
const Parallel = 8

// downFor is how long an upstream that failed to answer is not asked
// again, so that a batch of thousands of paths does not wait for
// thousands of timeouts.
const downFor = time.Minute

// maxKnown bounds the remembered answers (about 100 bytes each).
const maxKnown = 1 << 20

// Checker asks upstream caches and remembers their answers for its
// lifetime (a worker's): store paths never change, so an answer stays
// true.
type Checker struct {
	client  *http.Client
	mu      sync.Mutex
	known   map[string]bool // url + " " + hash: whether url has it
	down    map[string]downInfo
	nowFunc func() time.Time
}

type downInfo struct {
	until time.Time
	why   string
}

// New returns a Checker whose HTTP requests each time out after timeout.
func New(timeout time.Duration) *Checker {
	return &Checker{
		client:  &http.Client{Timeout: timeout},
		known:   map[string]bool{},
		down:    map[string]downInfo{},
		nowFunc: time.Now,
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
}

// Check asks each upstream url about the store paths listed for it.
func (c *Checker) Check(ctx context.Context, asks map[string][]string) Result {
	res := Result{Has: map[string]map[string]bool{}, Unreachable: map[string]string{}}
	type job struct{ url, path, hash string }
	var jobs []job
	c.mu.Lock()
	for u, paths := range asks {
		res.Has[u] = map[string]bool{}
		if d, ok := c.down[u]; ok && c.nowFunc().Before(d.until) {
			res.Unreachable[u] = d.why
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
				has, err := c.ask(ctx, j.url, j.hash)
				mu.Lock()
				if err != nil {
					if _, ok := res.Unreachable[j.url]; !ok {
						res.Unreachable[j.url] = err.Error()
					}
				} else {
					res.Has[j.url][j.path] = has
				}
				mu.Unlock()
				c.mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						c.down[j.url] = downInfo{c.nowFunc().Add(downFor), err.Error()}
					}
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
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		for u := range asks {
			if _, ok := res.Unreachable[u]; !ok && len(res.Has[u]) < len(asks[u]) {
				res.Unreachable[u] = err.Error()
			}
		}
	}
	return res
}

// ask asks one upstream about one hash.
func (c *Checker) ask(ctx context.Context, base, hash string) (bool, error) {
	if strings.HasPrefix(base, "file://") {
		u, err := url.Parse(base)
		if err != nil {
			return false, err
		}
		if _, err := os.Stat(u.Path); err != nil {
			return false, fmt.Errorf("reading %s: %w", u.Path, err)
		}
		_, err = os.Stat(filepath.Join(u.Path, hash+".narinfo"))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		default:
			return false, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, base+"/"+hash+".narinfo", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said by the caller
		}
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound, http.StatusForbidden, http.StatusGone:
		// S3 answers 403 for a key that does not exist.
		return false, nil
	default:
		return false, fmt.Errorf("HTTP %s", resp.Status)
	}
}

// hashOf returns the 32-character hash of a store path, or "".
func hashOf(p string) string {
	base := filepath.Base(p)
	if len(base) < 33 || base[32] != '-' {
		return ""
	}
	return base[:32]
}
