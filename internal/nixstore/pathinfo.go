package nixstore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// PathInfo is what Nix's database says about one store path.
type PathInfo struct {
	Path       string   `json:"path"`
	Valid      bool     `json:"-"`
	NarSize    int64    `json:"narSize"`
	Deriver    string   `json:"deriver"`
	References []string `json:"references"`
	Signatures []string `json:"signatures"`
	// CA is set when Nix holds a content address for the path
	// (nix-store --add, a fixed-output build, an import).
	CA contentAddress `json:"ca"`
	// Ultimate is set when Nix built the path here; only nix path-info
	// --json says it (BuiltHere), not the serve protocol.
	Ultimate bool `json:"ultimate"`
}

// contentAddress is whether a path has a content address: Nix prints it
// as a string, or as an object with --json-format 2, null when none.
type contentAddress bool

func (c *contentAddress) UnmarshalJSON(b []byte) error {
	v := strings.TrimSpace(string(b))
	*c = contentAddress(v != "null" && v != `""` && v != "false")
	return nil
}

// ContentAddressed reports whether Nix holds a content address for the path.
func (p PathInfo) ContentAddressed() bool { return bool(p.CA) }

// Added reports whether the path was added to the store as it is (`nix-store
// --add`, `builtins.path`, `builtins.toFile`, a flake's source), neither
// built nor substituted: it has no deriver, which every build output has,
// and no signature, which a substituted path carries from its cache (Nix
// requires one by default). Such a path may be anybody's file. A
// content-addressed path's deriver is only the word of whoever added it
// (the daemon takes an unsigned one from any user, deriver and all), so
// it counts as built only when Nix built it here (Ultimate).
func (p PathInfo) Added() bool {
	if len(p.Signatures) > 0 {
		return false
	}
	return p.Deriver == "" || p.Deriver == "unknown-deriver" || p.ContentAddressed() && !p.Ultimate
}

// BuiltHere reports, of paths, those Nix built on this machine, from nix
// path-info --json ("ultimate"), which the serve protocol does not carry:
// what tells a fixed-output build from a content-addressed path another
// user imported with a deriver of their choosing.
func (n Nix) BuiltHere(ctx context.Context, paths []string) (map[string]bool, error) {
	infos, err := n.pathInfos(ctx, false, maxArgBytes, paths)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(infos))
	for p, info := range infos {
		out[p] = info.Valid && info.Ultimate
	}
	return out, nil
}

// maxArgBytes bounds the paths given to one Nix call, well below the
// kernel's ARG_MAX (2 MiB with its environment): a 2,000-path closure
// (about 120 KiB) is one call.
const maxArgBytes = 512 << 10

// maxInfoOutput bounds what one path-info call may print (about 400
// bytes a path, more with many references).
const maxInfoOutput = 512 << 20

// PathInfos asks Nix about many paths at once, with recursive about
// their closures too: NAR size, deriver and references, from
// `nix-store --serve` (serve.go; a process per core for a level of
// thousands, servepool.go), never one exec per path. A path that is
// not in the store comes back with Valid false. Where the serve protocol
// fails, it asks `nix path-info --json` instead.
func (n Nix) PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]PathInfo, error) {
	if len(paths) == 0 {
		return map[string]PathInfo{}, nil
	}
	infos, serr := n.servePathInfos(ctx, recursive, paths)
	if serr == nil {
		return byPath(infos), nil
	}
	if ctx.Err() != nil {
		return nil, serr
	}
	out, err := n.pathInfos(ctx, recursive, maxArgBytes, paths)
	if err != nil {
		return nil, errors.Join(err, serr)
	}
	return out, nil
}

// byPath maps infos by path, made at its size: grown path by path, the
// map of a 10,000-path closure cost push --closure more than decoding it.
func byPath(all []PathInfo) map[string]PathInfo {
	out := make(map[string]PathInfo, len(all))
	for _, info := range all {
		out[info.Path] = info
	}
	return out
}

func (n Nix) pathInfos(ctx context.Context, recursive bool, maxArgBytes int, paths []string) (map[string]PathInfo, error) {
	var all []PathInfo
	for len(paths) > 0 {
		chunk, size := 0, 0
		for chunk < len(paths) && (chunk == 0 || size+len(paths[chunk])+1 <= maxArgBytes) {
			size += len(paths[chunk]) + 1
			chunk++
		}
		got, err := n.pathInfo(ctx, recursive, paths[:chunk])
		if err != nil {
			if !recursive || ctx.Err() != nil {
				return nil, err
			}
			// With --recursive, Nix fails on a path not in the store
			// instead of marking it: ask which are, then recurse on
			// those (two more calls, only then).
			flat, err := n.pathInfo(ctx, false, paths[:chunk])
			if err != nil {
				return nil, err
			}
			all = append(all, flat...)
			var valid []string
			for _, info := range flat {
				if info.Valid {
					valid = append(valid, info.Path)
				}
			}
			got = nil
			if len(valid) > 0 {
				if got, err = n.pathInfo(ctx, true, valid); err != nil {
					return nil, err
				}
			}
		}
		all = append(all, got...)
		paths = paths[chunk:]
	}
	return byPath(all), nil
}

// pathInfoTimeout bounds one path-info call: a database query, which
// takes about 0.1 s for 2,000 paths.
const pathInfoTimeout = 5 * time.Minute

func (n Nix) pathInfo(ctx context.Context, recursive bool, paths []string) ([]PathInfo, error) {
	infos, err := n.pathInfoAs(ctx, recursive, paths, nil)
	// Nix 2.34 deprecates --json without --json-format (a warning, to
	// become an error), which Nix before 2.33 does not know: asked for
	// the format it names only when it refuses the plain --json.
	var fe *jsonFormatError
	if errors.As(err, &fe) && ctx.Err() == nil {
		return n.pathInfoAs(ctx, recursive, paths, []string{"--json-format", "2"})
	}
	return infos, err
}

// jsonFormatError is a path-info call that failed naming --json-format.
type jsonFormatError struct{ err error }

func (e *jsonFormatError) Error() string { return e.err.Error() }
func (e *jsonFormatError) Unwrap() error { return e.err }

func (n Nix) pathInfoAs(ctx context.Context, recursive bool, paths, format []string) ([]PathInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, pathInfoTimeout)
	defer cancel()
	// Without substituters: for a path not in the store, Nix would
	// otherwise ask every substituter (seconds each, and the network).
	args := append([]string{"path-info", "--option", "substituters", "", "--json"}, format...)
	if recursive {
		args = append(args, "--recursive")
	}
	cmd := n.Command(ctx, append(append(args, "--"), paths...)...)
	var stderr tail
	cmd.Stderr = &stderr
	// Once ctx ends, nothing Nix started may keep stdout, and with it
	// the decoding, open.
	g := inGroup(cmd)
	cmd.WaitDelay = waitDelay
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nix path-info: %w", err)
	}
	// Read from the pipe a pipe's worth at a time: json.Decoder asks for
	// little more than one path's object, a read(2) each.
	infos, derr := decodePathInfo(bufio.NewReaderSize(io.LimitReader(stdout, maxInfoOutput), 64<<10))
	if derr != nil {
		// Ended, so that Wait returns: what it prints past output that
		// is not its JSON, or past maxInfoOutput, is of no use, and
		// read on it could be read until the timeout.
		cancel()
	}
	werr := g.End()
	var ee *exec.ExitError
	if werr != nil && (derr == nil || errors.As(werr, &ee) && ee.Exited()) {
		// Nix's own failure (not the kill above) says more.
		err := fmt.Errorf("nix path-info of %d paths: %w: %s", len(paths), werr, strings.TrimSpace(stderr.String()))
		if format == nil && strings.Contains(stderr.String(), "--json-format") {
			return nil, &jsonFormatError{err}
		}
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("nix path-info of %d paths: reading its output: %w", len(paths), derr)
	}
	return infos, nil
}

// decodePathInfo reads the forms Nix has printed: a list of objects (up
// to 2.18, an invalid path as {"path":…,"valid":false}), an object keyed
// by path (2.19 on, an invalid path as null), and that keyed by base name
// under "info" with "storeDir" beside it (--json-format 2, 2.33 on). It decodes one path's
// object at a time as Nix writes them, so that decoding a closure's 3 MB
// overlaps Nix's own printing, and no copy of the whole output is made.
func decodePathInfo(r io.Reader) ([]PathInfo, error) {
	dec := json.NewDecoder(r)
	open, err := dec.Token()
	if err != nil {
		return nil, err
	}
	var out []PathInfo
	switch open {
	case json.Delim('['):
		for dec.More() {
			var raw struct {
				PathInfo
				Valid *bool `json:"valid"`
			}
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			raw.PathInfo.Valid = raw.Valid == nil || *raw.Valid
			out = append(out, raw.PathInfo)
		}
	case json.Delim('{'):
		// Keyed by path; or, with --json-format 2 (Nix 2.33 on), the
		// same keyed by base name under "info", beside "storeDir".
		var storeDir string
		v2 := false
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, err
			}
			// A path starts with '/': these keys are the format's.
			switch path, _ := key.(string); path {
			case "info":
				v2 = true
				if t, err := dec.Token(); err != nil || t != json.Delim('{') {
					return nil, errors.New(`expected an object as "info"`)
				}
				for dec.More() {
					if out, err = decodeKeyed(dec, out); err != nil {
						return nil, err
					}
				}
				_, err = dec.Token()
			case "storeDir":
				err = dec.Decode(&storeDir)
			case "version":
				var skip json.RawMessage
				err = dec.Decode(&skip)
			default:
				out, err = decodeEntry(dec, path, out)
			}
			if err != nil {
				return nil, err
			}
		}
		if v2 {
			if !strings.HasPrefix(storeDir, "/") {
				return nil, errors.New(`no "storeDir" beside "info"`)
			}
			for i := range out {
				info := &out[i]
				info.Path = storeDir + "/" + info.Path
				if info.Deriver != "" && !strings.HasPrefix(info.Deriver, "/") {
					info.Deriver = storeDir + "/" + info.Deriver
				}
				for j, ref := range info.References {
					if !strings.HasPrefix(ref, "/") {
						info.References[j] = storeDir + "/" + ref
					}
				}
			}
		}
	default:
		return nil, errors.New("expected a JSON list or object")
	}
	// The closing bracket, then nothing more.
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return nil, err
	}
	return out, nil
}

// decodeKeyed decodes the next key of an object and its path's object.
func decodeKeyed(dec *json.Decoder, out []PathInfo) ([]PathInfo, error) {
	key, err := dec.Token()
	if err != nil {
		return nil, err
	}
	name, _ := key.(string)
	return decodeEntry(dec, name, out)
}

// decodeEntry decodes the object of path (null: not valid) and appends it.
func decodeEntry(dec *json.Decoder, path string, out []PathInfo) ([]PathInfo, error) {
	var info *PathInfo
	if err := dec.Decode(&info); err != nil {
		return nil, err
	}
	if info == nil {
		return append(out, PathInfo{Path: path}), nil
	}
	info.Path, info.Valid = path, true
	// Newer Nix may name references by base name.
	for i, ref := range info.References {
		if !strings.HasPrefix(ref, "/") {
			info.References[i] = path[:strings.LastIndexByte(path, '/')+1] + ref
		}
	}
	return append(out, *info), nil
}

// readAll is io.ReadAll from a buffer of 1 MiB that doubles: io.ReadAll
// grows from 512 bytes by a quarter at a time, copying the megabyte of a
// closure's list some 40 times.
func readAll(r io.Reader) ([]byte, error) {
	b := make([]byte, 0, 1<<20)
	for {
		if len(b) == cap(b) {
			b = append(b, make([]byte, cap(b))...)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// tail keeps the last 4 KiB written to it, for error messages.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }
