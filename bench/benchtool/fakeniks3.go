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
	"sync/atomic"
	"syscall"
	"time"
)

// runFakeNiks3 serves the part of the niks3 server API that niks3-hook's
// upload daemon uses for small paths (github.com/Mic92/niks3, client/):
// POST /api/pending_closures answers that every object is pending, with a
// presigned URL that is this server; PUT /s3/KEY stores the object under
// DIR/KEY, as the S3 bucket would (DIR then holds a binary cache's files,
// KEY.narinfo among them); .../sign answers no signatures; .../complete
// accepts. It answers at once, until SIGTERM: no network, no database.
func runFakeNiks3(args []string) error {
	fs := flag.NewFlagSet("fakeniks3", flag.ContinueOnError)
	dir := fs.String("dir", "", "where the uploaded objects go")
	portFile := fs.String("port-file", "", "write the URL here once listening")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	var ids atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/pending_closures", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Objects []struct{ Key, Type string } `json:"objects"`
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
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("POST /api/pending_closures/{id}/sign", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"signatures":{}}`)
	})
	mux.HandleFunc("POST /api/pending_closures/{id}/complete", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /s3/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		// Written aside, then renamed: a narinfo appears complete.
		file := filepath.Join(*dir, filepath.FromSlash(key))
		err := os.MkdirAll(filepath.Dir(file), 0o755)
		var f *os.File
		if err == nil {
			f, err = os.Create(file + ".part")
		}
		if err == nil {
			_, err = io.Copy(f, r.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil {
			err = os.Rename(file+".part", file)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	if err := os.WriteFile(*portFile, []byte(base+"\n"), 0o644); err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
