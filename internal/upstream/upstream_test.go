package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// realCache builds two paths and copies the first into a binary cache
// with nix copy --to file://; it returns the cache dir and both paths.
func realCache(t *testing.T) (dir, in, out string) {
	t.Helper()
	tmp := t.TempDir()
	salt := nixtest.Salt()
	_, paths := nixtest.Build(t, fmt.Sprintf(`[ (derivation { name = "up-in"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; })
  (derivation { name = "up-out"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo %[1]s > $out" ]; }) ]`, salt))
	dir = filepath.Join(tmp, "cache")
	if b, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "copy", "--to", "file://"+dir, paths[0]).CombinedOutput(); err != nil {
		t.Fatalf("nix copy: %v\n%s", err, b)
	}
	return dir, paths[0], paths[1]
}

// TestHTTPAndFile asks a real binary cache, served over HTTP on 127.0.0.1
// and read as file://, about a path it has and one it has not; the second
// Check is answered from memory.
func TestHTTPAndFile(t *testing.T) {
	dir, in, out := realCache(t)
	var requests atomic.Int32
	fsrv := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Method != http.MethodGet {
			t.Errorf("method %s, want GET", r.Method)
		}
		fsrv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := New(5*time.Second, time.Minute)
	for _, u := range []string{srv.URL, "file://" + dir} {
		res := c.Check(context.Background(), map[string][]string{u: {in, out}})
		if !res.Has[u][in] || res.Has[u][out] {
			t.Errorf("%s: Has = %v, want %s only", u, res.Has[u], in)
		}
		if _, ok := res.Has[u][out]; !ok {
			t.Errorf("%s: no answer for %s", u, out)
		}
		if len(res.Unreachable) != 0 {
			t.Errorf("%s: unreachable: %v", u, res.Unreachable)
		}
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	res := c.Check(context.Background(), map[string][]string{srv.URL: {in, out}})
	if !res.Has[srv.URL][in] || res.Has[srv.URL][out] || requests.Load() != 2 {
		t.Errorf("second check: %v after %d requests; want the remembered answers, no request", res.Has, requests.Load())
	}
}

// TestStalledUpstream: an upstream that accepts connections and never
// answers costs one timeout, is reported unreachable, and is not asked
// again for a while.
func TestStalledUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	url := "http://" + ln.Addr().String()
	var paths []string
	for i := range 50 {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-stalled", i))
	}
	c := New(300*time.Millisecond, time.Minute)
	done := make(chan Result, 1)
	go func() { done <- c.Check(context.Background(), map[string][]string{url: paths}) }()
	var res Result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Check did not return: the timeout does not bound it")
	}
	if why := res.Unreachable[url]; why == "" {
		t.Fatalf("not reported unreachable: %+v", res)
	}
	if len(res.Has[url]) != 0 {
		t.Errorf("answers from a stalled upstream: %v", res.Has[url])
	}
	// At most Parallel requests were in flight when the first timed out;
	// the rest were not sent.
	if n := accepted.Load(); n > Parallel {
		t.Errorf("%d connections to a stalled upstream, want at most %d", n, Parallel)
	}
	before := accepted.Load()
	res = c.Check(context.Background(), map[string][]string{url: paths[:1]})
	if res.Unreachable[url] == "" || accepted.Load() != before {
		t.Errorf("asked again right after it timed out: %+v", res)
	}
}

// TestParallelBound counts the requests in flight at once.
func TestParallelBound(t *testing.T) {
	var cur, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	var paths []string
	for i := range 100 {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-par", i))
	}
	res := New(10*time.Second, time.Minute).Check(context.Background(), map[string][]string{srv.URL: paths})
	if len(res.Has[srv.URL]) != 100 {
		t.Fatalf("%d answers, want 100: %v", len(res.Has[srv.URL]), res.Unreachable)
	}
	if p := peak.Load(); p > Parallel || p < 2 {
		t.Errorf("peak of %d requests in flight, want 2..%d", p, Parallel)
	}
}

// TestServerError: a 500 is no answer: reported, and the path pushed.
func TestServerError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	p := fmt.Sprintf("/nix/store/%032d-err", 1)
	res := New(time.Second, time.Minute).Check(context.Background(), map[string][]string{srv.URL: {p}})
	if res.Has[srv.URL][p] || !strings.Contains(res.Unreachable[srv.URL], "500") {
		t.Errorf("= %+v, want unreachable with HTTP 500", res)
	}
	res = New(time.Second, time.Minute).Check(context.Background(), map[string][]string{"file:///no/such/cache": {p}})
	if res.Unreachable["file:///no/such/cache"] == "" {
		t.Errorf("missing file:// cache: %+v, want unreachable", res)
	}
}

// Issue 18, defect 2: an upstream has a path only on evidence. A 200
// that is not the narinfo asked (a captive portal's page, a narinfo of
// another path) and a redirect to another host count as not having it,
// each warned about once; a redirect on the same server is followed; a
// real narinfo counts.
func TestEvidence(t *testing.T) {
	dir, in, out := realCache(t)
	other := httptest.NewServer(http.FileServer(http.Dir(dir))) // has the real narinfo
	defer other.Close()
	narinfo := func(p string) string { return "/" + filepath.Base(p)[:32] + ".narinfo" }
	mux := http.NewServeMux()
	mux.HandleFunc("/portal/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>Please log in</body></html>")
	})
	mux.HandleFunc("/wrong/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "StorePath: %s\nURL: nar/x.nar\n", out) // another path's
	})
	mux.HandleFunc("/offsite/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+narinfo(in), http.StatusFound)
	})
	mux.HandleFunc("/moved/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/real"+strings.TrimPrefix(r.URL.Path, "/moved"), http.StatusMovedPermanently)
	})
	mux.Handle("/real/", http.StripPrefix("/real", http.FileServer(http.Dir(dir))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := New(5*time.Second, time.Minute)
	for _, tc := range []struct {
		base string
		has  bool
		warn string
	}{
		{srv.URL + "/portal", false, "answered 200 for " + filepath.Base(in)[:32] + ".narinfo with no StorePath (text/html)"},
		{srv.URL + "/wrong", false, "with StorePath " + out},
		{srv.URL + "/offsite", false, "redirected " + filepath.Base(in)[:32] + ".narinfo to another host or scheme (http://" + strings.TrimPrefix(other.URL, "http://") + ")"},
		{srv.URL + "/moved", true, ""},
		{srv.URL + "/real", true, ""},
	} {
		for round := range 2 {
			c.known = map[string]bool{} // ask again: the warning is not repeated
			res := c.Check(context.Background(), map[string][]string{tc.base: {in}})
			if got, ok := res.Has[tc.base][in]; !ok || got != tc.has || len(res.Unreachable) > 0 {
				t.Errorf("%s: Has = %v (answered %v), unreachable %v; want %v", tc.base, got, ok, res.Unreachable, tc.has)
			}
			w := c.Warnings()
			switch {
			case tc.warn == "" && len(w) > 0:
				t.Errorf("%s: warnings %q", tc.base, w)
			case tc.warn != "" && round == 0 && (len(w) != 1 || !strings.Contains(w[0], tc.warn) || !strings.Contains(w[0], "pushed")):
				t.Errorf("%s: warnings %q, want one with %q", tc.base, w, tc.warn)
			case tc.warn != "" && round == 1 && len(w) > 0:
				t.Errorf("%s: warned again: %q", tc.base, w)
			}
		}
	}
}

// A file:// upstream passes the trust rule: a narinfo in a directory
// another user can write is no evidence (the upstream is refused, so its
// paths are pushed), and one that names no path (an empty file) is not
// the path's.
func TestFileEvidence(t *testing.T) {
	dir, in, _ := realCache(t)
	p := filepath.Join(dir, filepath.Base(in)[:32]+".narinfo")
	c := New(time.Second, time.Minute)
	u := "file://" + dir
	if res := c.Check(context.Background(), map[string][]string{u: {in}}); !res.Has[u][in] {
		t.Fatalf("a real cache: %+v", res)
	}
	// Empty, as anyone could plant one.
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c = New(time.Second, time.Minute)
	if res := c.Check(context.Background(), map[string][]string{u: {in}}); res.Has[u][in] || len(res.Unreachable) > 0 {
		t.Errorf("an empty narinfo: %+v, want not there", res)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "does not name "+in) {
		t.Errorf("warnings %q", w)
	}
	// The directory writable by others: refused, said, and the path not
	// counted as there.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	c = New(time.Second, time.Minute)
	res := c.Check(context.Background(), map[string][]string{u: {in}})
	if res.Has[u][in] || !strings.Contains(res.Unreachable[u], "refusing") || !strings.Contains(res.Unreachable[u], "writable by group or others") {
		t.Errorf("a world-writable file:// cache: %+v, want refused", res)
	}
}

// A round of questions ends at its deadline (issue 18, defect 4): an
// upstream that answers the first 20 of 200 questions at once and then
// none, asked with a deadline of 1 s, has those answered; the rest are
// left unanswered (so pushed), the upstream is Slow and not asked again
// for a while. The round can end only at its deadline: a Check that
// waited for every answer would see the requests time out (5 times the
// deadline), and call the upstream down, not slow.
func TestRoundDeadline(t *testing.T) {
	// A machine too loaded to get one local answer within the deadline
	// answers none: that round says nothing, and is tried again with
	// twice the deadline, a few times.
	for deadline := time.Second; ; deadline *= 2 {
		if roundDeadline(t, deadline) {
			return
		}
		if deadline >= 16*time.Second {
			t.Fatalf("none of the 20 questions a local upstream answers at once was answered within a round deadline of %s", deadline)
		}
		t.Logf("no answer within a round deadline of %s: trying %s", deadline, 2*deadline)
	}
}

// roundDeadline is a round of TestRoundDeadline; false when it saw no
// answer.
func roundDeadline(t *testing.T, deadline time.Duration) bool {
	const answered = 20
	var requests atomic.Int32
	var lastAsked atomic.Bool
	last := fmt.Sprintf("%032d", 199)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, last) {
			lastAsked.Store(true)
		}
		if requests.Add(1) > answered {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	defer close(release)
	var paths []string
	for i := range 200 {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-slow", i))
	}
	c := New(5*deadline, deadline)
	res := c.Check(context.Background(), map[string][]string{srv.URL: paths})
	if res.Slow[srv.URL] == "" || !strings.Contains(res.Unreachable[srv.URL], "upstream_deadline") {
		t.Errorf("not marked slow: %+v", res)
	}
	n := len(res.Has[srv.URL])
	if n > answered {
		t.Errorf("%d of 200 answered, want at most the %d answered", n, answered)
	}
	for p, has := range res.Has[srv.URL] {
		if has {
			t.Errorf("%s counted as there", p)
		}
	}
	// The last path was not asked in the first round: the round ended
	// with a question per worker in flight. (A count of all requests
	// would also see one of those reach the server late.)
	res = c.Check(context.Background(), map[string][]string{srv.URL: paths[199:]})
	if res.Slow[srv.URL] == "" || lastAsked.Load() {
		t.Errorf("asked again right after a slow round, or not said slow: %+v", res)
	}
	return n > 0
}

// rawServer answers every connection with reply, as written, whatever
// was asked: a status line or header no net/http server would send.
func rawServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request, whole in one read
				_, _ = io.WriteString(c, reply)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// What a hostile upstream says goes into messages bounded: a reason
// phrase or a Content-Type of a megabyte (net/http takes headers up to
// 10 MiB) is cut, not copied into every round's warning and the log.
func TestOddAnswersAreCut(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	p := fmt.Sprintf("/nix/store/%032d-long", 1)
	u := rawServer(t, "HTTP/1.1 500 "+long+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	res := New(5*time.Second, time.Minute).Check(context.Background(), map[string][]string{u: {p}})
	if why := res.Unreachable[u]; !strings.Contains(why, "500") || len(why) > 1024 {
		t.Errorf("unreachable: %d bytes (%.60q...), want HTTP 500 in at most 1 KiB", len(why), why)
	}
	body := "StorePath: /nix/store/" + long[:512<<10] + "\n"
	u = rawServer(t, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", long, len(body), body))
	c := New(5*time.Second, time.Minute)
	res = c.Check(context.Background(), map[string][]string{u: {p}})
	w := c.Warnings()
	if res.Has[u][p] || len(w) != 1 || len(w[0]) > 2048 {
		n := 0
		if len(w) > 0 {
			n = len(w[0])
		}
		t.Errorf("Has %v, %d warnings, the first of %d bytes; want one of at most 2 KiB", res.Has[u], len(w), n)
	}
}

// A file:// upstream on a mount that hangs (NFS) holds no round past its
// deadline, nor a request past upstream_timeout: the read, which cannot
// be interrupted, is left behind, and the upstream is unreachable. Here
// the read blocks until the test ends.
func TestHungFileUpstream(t *testing.T) {
	path := "/nix/store/00000000000000000000000000000000-hung"
	u := "file:///hung"
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
	}{
		{"round ends", time.Hour, true},
		{"request times out", time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			started := make(chan struct{}, 1)
			c := New(tc.timeout, 0)
			c.readFile = func(base, path, hash string) (bool, error) {
				started <- struct{}{}
				<-release
				return true, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan Result, 1)
			go func() { done <- c.Check(ctx, map[string][]string{u: {path}}) }()
			eventually.Recv(t, eventually.Left(t), "Check to read the file", started)
			if tc.cancel {
				cancel()
			}
			var res Result
			select {
			case res = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Check did not return while the file read hung")
			}
			if res.Has[u][path] || res.Unreachable[u] == "" {
				t.Errorf("a hung file:// upstream: %+v, want unreachable, no answer", res)
			}
			if !tc.cancel && !strings.Contains(res.Unreachable[u], "upstream_timeout") {
				t.Errorf("unreachable for %q, want the timeout named", res.Unreachable[u])
			}
		})
	}
}

// What a hostile upstream says reaches a terminal (explain prints why
// an upstream did not answer): its control characters are escaped, not
// passed on to clear the screen or retitle the window.
func TestOddAnswersAreEscaped(t *testing.T) {
	p := fmt.Sprintf("/nix/store/%032d-esc", 1)
	u := rawServer(t, "HTTP/1.1 500 \x1b[2Jboom\a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	res := New(5*time.Second, time.Minute).Check(context.Background(), map[string][]string{u: {p}})
	if why := res.Unreachable[u]; !strings.Contains(why, `500 \x1b[2Jboom\x07`) || strings.ContainsFunc(why, unicode.IsControl) {
		t.Errorf("unreachable: %q, want the reason phrase with its control characters escaped", why)
	}
	body := "StorePath: /nix/store/\x1b]0;owned\a\n"
	u = rawServer(t, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
	c := New(5*time.Second, time.Minute)
	c.Check(context.Background(), map[string][]string{u: {p}})
	if w := c.Warnings(); len(w) != 1 || strings.ContainsFunc(w[0], unicode.IsControl) {
		t.Errorf("warnings %q, want one with no control character", w)
	}
}

// cut escaped what unicode.IsControl calls control, but passed a byte
// that is no UTF-8 as it was: 0x9b alone is CSI to a terminal not set to
// UTF-8, and status and explain print cli's escapes (\x9b) for it
// elsewhere. A hostile upstream's reason phrase or StorePath gets the
// same.
func TestOddBytesAreEscaped(t *testing.T) {
	p := fmt.Sprintf("/nix/store/%032d-esc", 1)
	u := rawServer(t, "HTTP/1.1 500 \x9b2Jboom\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	res := New(5*time.Second, time.Minute).Check(context.Background(), map[string][]string{u: {p}})
	if why := res.Unreachable[u]; !strings.Contains(why, `500 \x9b2Jboom`) || !utf8.ValidString(why) {
		t.Errorf("unreachable: %q, want the reason phrase with its odd byte escaped", why)
	}
	body := "StorePath: /nix/store/\x9b2J\n"
	u = rawServer(t, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
	c := New(5*time.Second, time.Minute)
	c.Check(context.Background(), map[string][]string{u: {p}})
	if w := c.Warnings(); len(w) != 1 || !utf8.ValidString(w[0]) || !strings.Contains(w[0], `\x9b2J`) {
		t.Errorf("warnings %q, want one with the odd byte escaped", w)
	}
}

// A file:// upstream reached through another user's link, left in a
// directory only root writes, is refused, as README says: where it leads
// was their choice. Root only reads there, and the refusal said "so its
// owner chose where root writes", which sent the reader looking for a
// write that is not made.
func TestFileUpstreamOthersLinkRefusalSaysRead(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(d, "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(d, "link")
	if err := os.Symlink(cache, link); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, link)
	p := fmt.Sprintf("/nix/store/%032d-link", 1)
	up := "file://" + link
	res := New(time.Second, time.Minute).Check(context.Background(), map[string][]string{up: {p}})
	why := res.Unreachable[up]
	if res.Has[up][p] || !strings.Contains(why, "refusing") || !strings.Contains(why, "owned by "+u.Name) {
		t.Fatalf("a file:// upstream through another user's link: %+v, want refused", res)
	}
	if strings.Contains(why, "writes") {
		t.Errorf("the refusal of what root only reads speaks of a write: %s", why)
	}
}
