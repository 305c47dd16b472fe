package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runWaitFiles waits until a directory holds n files with a suffix (the
// narinfos of a binary cache) and records how long that took: the time
// from the end of a build loop to the last path in the cache, whichever
// pusher wrote it.
func runWaitFiles(args []string) error {
	fs := flag.NewFlagSet("waitfiles", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory")
	suffix := fs.String("suffix", ".narinfo", "file name suffix")
	n := fs.Int("n", 0, "files to wait for")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	name := fs.String("name", "", "result name")
	kind := fs.String("kind", "tocache", "result kind")
	results := fs.String("results", "", "append the result here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	for {
		got := countSuffix(*dir, *suffix)
		if got >= *n {
			wall := time.Since(start)
			fmt.Fprintf(os.Stderr, "  %-28s %.3fs (%d files)\n", *name, wall.Seconds(), got)
			return appendResults(*results, Result{Kind: *kind, Name: *name, Seconds: wall.Seconds(), Items: got})
		}
		if time.Since(start) > *timeout {
			return fmt.Errorf("%s: %d of %d %s files in %s after %s", *name, got, *n, *suffix, *dir, *timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countSuffix(dir, suffix string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			n++
		}
	}
	return n
}

// runFakeNiks3 serves the part of the niks3 server API that niks3-hook's
// upload daemon uses for small paths (github.com/Mic92/niks3, client/):
// POST /api/pending_closures answers that every object is pending, with a
// presigned URL that is this server; PUT /s3/KEY stores the object under
// DIR/KEY, as the S3 bucket would; .../sign answers no signatures;
// .../complete accepts. DIR then holds a binary cache's files (KEY.narinfo,
// zstd-compressed as niks3 uploads them, nar/..., listings). It answers at
// once: no network, no database, no delay. Every request is logged to -log
// as one line. It runs until SIGTERM.
func runFakeNiks3(args []string) error {
	fs := flag.NewFlagSet("fakeniks3", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("dir", "", "where the uploaded objects go")
	portFile := fs.String("port-file", "", "write the URL here once listening")
	logFile := fs.String("log", "", "one line per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	var logw io.Writer = io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logw = f
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	var (
		mu  sync.Mutex
		ids atomic.Int64
	)
	logLine := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/pending_closures", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Closure string `json:"closure"`
			Objects []struct {
				Key  string `json:"key"`
				Type string `json:"type"`
			} `json:"objects"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type pending struct {
			Type         string `json:"type"`
			PresignedURL string `json:"presigned_url"`
		}
		resp := struct {
			ID             string             `json:"id"`
			StartedAt      string             `json:"started_at"`
			PendingObjects map[string]pending `json:"pending_objects"`
		}{fmt.Sprint(ids.Add(1)), time.Now().UTC().Format(time.RFC3339), map[string]pending{}}
		for _, o := range req.Objects {
			resp.PendingObjects[o.Key] = pending{Type: o.Type, PresignedURL: base + "/s3/" + o.Key}
		}
		logLine("pending_closure %s id=%s objects=%d", req.Closure, resp.ID, len(req.Objects))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("POST /api/pending_closures/{id}/sign", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		logLine("sign id=%s", r.PathValue("id"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"signatures":{}}`)
	})
	mux.HandleFunc("POST /api/pending_closures/{id}/complete", func(w http.ResponseWriter, r *http.Request) {
		logLine("complete id=%s", r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /s3/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		file := filepath.Join(*dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Written aside, then renamed: a narinfo appears complete.
		tmp := file + ".part"
		f, err := os.Create(tmp)
		if err == nil {
			_, err = io.Copy(f, r.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil {
			err = os.Rename(tmp, file)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		logLine("put %s", key)
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		logLine("unhandled %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	})
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(base+"\n"), 0o644); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
