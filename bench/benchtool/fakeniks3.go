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
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// runFakeNiks3 serves the part of the niks3 server API that niks3-hook's
// upload daemon uses for small paths (github.com/Mic92/niks3, client/):
// POST /api/pending_closures answers that every object is pending, with a
// presigned URL that is this server; PUT /s3/KEY stores the object under
// DIR/KEY, as the S3 bucket would (DIR then holds a binary cache's files,
// KEY.narinfo among them); .../sign answers no signatures; .../complete
// accepts. It answers at once: no network, no database.
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
		var req struct{ Objects []struct{ Key, Type string } }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		pending := map[string]any{}
		for _, o := range req.Objects {
			pending[o.Key] = map[string]string{"type": o.Type, "presigned_url": base + "/s3/" + o.Key}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": fmt.Sprint(ids.Add(1)), "started_at": time.Now().UTC().Format(time.RFC3339), "pending_objects": pending})
	})
	mux.HandleFunc("POST /api/pending_closures/{id}/sign", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"signatures":{}}`)
	})
	mux.HandleFunc("POST /api/pending_closures/{id}/complete", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /s3/{key...}", func(w http.ResponseWriter, r *http.Request) {
		// Written aside, then renamed: a narinfo appears complete.
		file := filepath.Join(*dir, filepath.FromSlash(r.PathValue("key")))
		data, err := io.ReadAll(r.Body)
		if err == nil && !strings.HasPrefix(file, filepath.Clean(*dir)+"/") {
			err = errors.New("bad key")
		}
		if err == nil {
			err = errors.Join(os.MkdirAll(filepath.Dir(file), 0o755), os.WriteFile(file+".part", data, 0o644), os.Rename(file+".part", file))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	if err := os.WriteFile(*portFile, []byte(base+"\n"), 0o644); err != nil {
		return err
	}
	// Until killed.
	return (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}
