package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/jsonline"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Bulk files. Many pairs queued at once (`push --closure` of a system, a
// derivation with many outputs) are written as the lines of one file in
// bulk/, fsynced once and renamed into place: a file or a link per entry
// made queueing 10,000 paths cost 118 ms where writing their lines costs
// 7 ms (issue 22). An entry of a bulk file has no name of its own: its
// key is computed from its line.
//
// Bulk files are never changed in place. The worker, the only one that
// changes entries, replaces a bulk file whole: the lines it keeps go to a
// new file, synced, before the old one is removed, so a crash leaves at
// worst both, and a pair queued twice is pushed twice, which the pushers
// make cheap. A pair may be in several files (queued twice); whoever
// reads them counts it once.
const bulkDir = "bulk"

// Source is where an entry lives: "" for its own file in entries/, else
// the name of its bulk file.
func (e *Entry) Source() string { return e.src }

// SetSource is for the worker, which follows its bulk files through
// Apply's Replaced: the entry lives in that bulk file now.
func (e *Entry) SetSource(src string) { e.src = src }

// Stub stands for the entry with that key in src (see Source), for
// Changes that only remove it.
func Stub(key, src string) *Entry { return &Entry{key: key, src: src} }

// addBulk writes entries as bulk files of at most batchChunk bytes each.
// The lines go to the file through a small buffer as they are made: one
// buffer for all of them cost Add a zeroed 2.5 MB for 10,000 entries.
func (q *Queue) addBulk(pairs []Pair, queued time.Time) (int, error) {
	defer q.bulk.forget()
	if err := mkdirPrivate(q.path(bulkDir), false); err != nil {
		return 0, err
	}
	stamp := queued.AppendFormat(nil, time.RFC3339Nano)
	added := 0
	for len(pairs) > 0 {
		n := 0
		err := q.writeBulkWith(func(w *bufio.Writer) error {
			line := make([]byte, 0, 512)
			size := 0
			n = 0 // written again (see tmpRewrites)
			for n < len(pairs) && size < batchChunk {
				line = appendNew(line[:0], &pairs[n], stamp)
				if _, err := w.Write(line); err != nil {
					return err
				}
				size += len(line)
				n++
			}
			return nil
		})
		if err != nil {
			return added, q.syncBulkAfterError(added, err)
		}
		added += n
		pairs = pairs[n:]
	}
	return added, syncDir(q.path(bulkDir))
}

// appendNew appends the entry Add makes of a pair (no retry state) as a
// line of JSON, as encoding/json writes it but for six times less work:
// queueing 10,000 entries spent more on encoding them than on writing
// them. queued is the time queued, formatted (time.RFC3339Nano) once for
// all the pairs.
func appendNew(b []byte, p *Pair, queued []byte) []byte {
	b = append(b, `{"target":`...)
	b = appendString(b, p.Target)
	b = append(b, `,"path":`...)
	if sp := p.Path; jsonClean(sp.Dir) && jsonClean(sp.Hash) && jsonClean(sp.Name) {
		// The path's string, not made: 10,000 of them were a third of
		// Add's allocations.
		b = append(append(append(append(append(append(b, '"'), sp.Dir...), '/'), sp.Hash...), '-'), sp.Name...)
		b = append(b, '"')
	} else {
		b = appendString(b, sp.String())
	}
	b = append(b, `,"queued":"`...)
	b = append(b, queued...)
	b = append(b, '"')
	if p.Session != 0 {
		b = strconv.AppendInt(append(b, `,"session":`...), int64(p.Session), 10)
	}
	if f := p.Facts; f != nil {
		b = strconv.AppendInt(append(b, `,"facts":{"nar_size":`...), f.NarSize, 10)
		if f.Deriver != "" {
			b = appendString(append(b, `,"deriver":`...), f.Deriver)
		}
		if f.Substitutes != "" {
			b = appendString(append(b, `,"substitutes":`...), f.Substitutes)
		}
		b = append(b, '}')
	}
	if p.Within != "" {
		b = appendString(append(b, `,"within":`...), p.Within)
	}
	if p.Listed != "" {
		b = appendString(append(b, `,"listed":`...), p.Listed)
	}
	if p.Pinned {
		b = append(b, `,"pinned":true`...)
	}
	return append(b, "}\n"...)
}

// jsonClean reports whether s goes into a JSON string as it is (store
// paths always do).
func jsonClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string: at once when nothing in it
// needs escaping (store paths never do).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	if jsonClean(s) {
		return append(append(b, s...), '"')
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// syncBulkAfterError makes what was queued before an error durable, so
// that the count Add returns holds.
func (q *Queue) syncBulkAfterError(added int, err error) error {
	if added == 0 {
		return err
	}
	if serr := syncDir(q.path(bulkDir)); serr != nil {
		return fmt.Errorf("%w (and %v)", err, serr)
	}
	return err
}

// writeBulk writes lines to a new bulk file, fsynced, and returns its
// name. The caller syncs bulk/.
func (q *Queue) writeBulk(lines []byte) (string, error) {
	tmp, err := q.writeTmp("bulk", lines, true)
	if err != nil {
		return "", err
	}
	return q.placeBulk(tmp)
}

// writeBulkWith is writeBulk with the lines written by fill, through a
// buffer, rather than given whole.
func (q *Queue) writeBulkWith(fill func(*bufio.Writer) error) error {
	for try := 0; ; try++ {
		tmp, err := q.writeTmpWith("bulk", func(f *os.File) error {
			w := bufio.NewWriterSize(f, 256<<10)
			if err := fill(w); err != nil {
				return err
			}
			return w.Flush()
		}, true)
		if err != nil {
			return err
		}
		_, err = q.placeBulk(tmp)
		if !errors.Is(err, fs.ErrNotExist) || try == tmpRewrites {
			return err
		}
	}
}

// placeBulk moves a written bulk file from tmp/ into bulk/, under a name
// no bulk file has. Its temporary name is unique in tmp/ alone (a random
// 32-bit number), and a rename onto the name of a bulk file still queued
// would replace that file, losing every entry in it without a word; a
// link fails instead, and the file takes the next free name.
func (q *Queue) placeBulk(tmp string) (string, error) {
	defer os.Remove(tmp)
	base := filepath.Base(tmp)
	name := base
	for i := 1; ; i++ {
		err := os.Link(tmp, q.path(bulkDir, name))
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) || i > maxPlaceTries {
			return "", fmt.Errorf("queueing: %w", err)
		}
		name = base + "." + strconv.Itoa(i)
	}
}

// maxPlaceTries bounds placeBulk's search for a free name: a name taken
// that often is not chance.
const maxPlaceTries = 100

// BulkNames lists the bulk files.
func (q *Queue) BulkNames() ([]string, error) {
	return q.dirNames(bulkDir)
}

// ReadBulk calls fn with each entry of a bulk file, in order, and returns
// how many lines were not entries (see Apply, which moves them aside). A
// pair may come more than once.
func (q *Queue) ReadBulk(name string, fn func(*Entry)) (bad int, err error) {
	if !bulkName(name) {
		return 0, fmt.Errorf("reading bulk file: bad name %q", name)
	}
	f, _, err := safeopen.Open(q.path(bulkDir, name), safeopen.Options{NoFollow: true})
	if err != nil {
		return 0, fmt.Errorf("reading bulk file: %w", err)
	}
	defer f.Close()
	lp := newLineParser()
	err = eachLine(f, func(line []byte) {
		e, key := lp.parse(line)
		if e == nil {
			bad++
			return
		}
		e.key, e.src = key, name
		fn(e)
	})
	if err != nil {
		return bad, fmt.Errorf("reading bulk file %s: %w", q.path(bulkDir, name), err)
	}
	return bad, nil
}

// eachLine calls fn with each non-empty line of r; a line longer than
// maxEntrySize is passed on cut (and then does not parse).
func eachLine(r io.Reader, fn func([]byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) < maxEntrySize {
				long = append(long, chunk...)
			}
			continue
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			fn(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// lineParser decodes the lines of bulk and shared files, computing the
// digest of each target name once.
type lineParser struct {
	storeDir string
	digests  map[string]string
	recent   recent
}

// recent holds the last target and root a parser made strings of: the
// lines of a bulk file share them (one push's target, its closure's
// root), so each is made once rather than once a line.
type recent struct{ target, within string }

// str returns b as a string, *last when it is the same.
func (rc *recent) str(b []byte, last *string) string {
	if rc != nil && string(b) == *last {
		return *last
	}
	s := string(b)
	if rc != nil {
		*last = s
	}
	return s
}

func newLineParser() *lineParser {
	return &lineParser{storeDir: storepath.StoreDir(), digests: map[string]string{}}
}

// parse decodes one line: nil when it is not an entry of a store path.
func (lp *lineParser) parse(line []byte) (*Entry, string) {
	if len(line) > maxEntrySize {
		return nil, ""
	}
	e, ok := parseNew(line, &lp.recent)
	if !ok {
		e = &Entry{}
		if json.Unmarshal(line, e) != nil {
			return nil, ""
		}
	}
	if e.Target == "" {
		return nil, ""
	}
	p, err := storepath.Parse(lp.storeDir, e.Path)
	if err != nil {
		return nil, ""
	}
	return e, p.Hash + "." + lp.digest(e.Target)
}

// parseNew reads a line as appendNew writes it, ok false for anything
// else (a line the worker rewrote, an escape, a byte that is not ASCII),
// which encoding/json reads then. Both give the same Entry for the lines
// it takes (TestParseNewAsJSON). The worker reads a bulk file twice per
// round (its index, then the batch), and encoding/json took 4 µs a line.
// rc, when not nil, keeps the strings lines share.
func parseNew(line []byte, rc *recent) (*Entry, bool) {
	c, ok := jsonline.New(line)
	if !ok {
		return nil, false
	}
	var scratch recent
	if rc == nil {
		rc = &scratch
	}
	shared := func(last *string) (string, bool) {
		b, ok := c.Raw()
		return rc.str(b, last), ok
	}
	e := &Entry{}
	var queued []byte
	if !c.Lit(`{"target":"`) {
		return nil, false
	}
	if e.Target, ok = shared(&rc.target); !ok || !c.Lit(`,"path":"`) {
		return nil, false
	}
	if e.Path, ok = c.Str(); !ok || !c.Lit(`,"queued":"`) {
		return nil, false
	}
	if queued, ok = c.Raw(); !ok || e.Queued.UnmarshalText(queued) != nil {
		return nil, false
	}
	if c.Lit(`,"session":`) {
		n, ok := c.Int()
		if !ok || int64(int(n)) != n {
			return nil, false
		}
		e.Session = int(n)
	}
	if c.Lit(`,"facts":{"nar_size":`) {
		f := &Facts{}
		if f.NarSize, ok = c.Int(); !ok {
			return nil, false
		}
		if c.Lit(`,"deriver":"`) {
			if f.Deriver, ok = c.Str(); !ok {
				return nil, false
			}
		}
		if c.Lit(`,"substitutes":"`) {
			if f.Substitutes, ok = c.Str(); !ok {
				return nil, false
			}
		}
		if !c.Lit("}") {
			return nil, false
		}
		e.Facts = f
	}
	if c.Lit(`,"within":"`) {
		if e.Within, ok = shared(&rc.within); !ok {
			return nil, false
		}
	}
	if c.Lit(`,"listed":"`) {
		if e.Listed, ok = c.Str(); !ok {
			return nil, false
		}
	}
	e.Pinned = c.Lit(`,"pinned":true`)
	if !c.End("}") {
		return nil, false
	}
	return e, true
}

// Before orders copies of one pair (queued twice): the one that failed
// more often first, its retry state being what holds (queueing a failing
// path again does not make it due), then the one queued first.
func Before(a, b *Entry) bool {
	if a.Attempts != b.Attempts {
		return a.Attempts > b.Attempts
	}
	return a.Queued.Before(b.Queued)
}

// bulkName tells a bulk file's name (as writeBulk makes them) from
// anything else, so that no name reaches outside bulk/.
func bulkName(name string) bool {
	return strings.HasPrefix(name, "bulk.") && !strings.ContainsRune(name, '/')
}

// bulkIndex is what status, wait and push --wait know of the bulk files:
// their entries by key, each file read once (they never change: a
// replaced file has a new name).
type bulkIndex struct {
	mu      sync.Mutex
	files   map[string][]*Entry
	byKey   map[string]*Entry
	checked time.Time
	// keys are the keys of each file's pairs, each once (see Keys), and
	// stated the files that hold a retry state; all is every stateless
	// file's keys and allStated every stated file's, each once, for the
	// files named in allOf.
	keys      map[string][]string
	stated    map[string]bool
	all       []string
	allStated []string
	allOf     string
}

// forget makes the next read list bulk/ again (after a change of ours).
func (b *bulkIndex) forget() {
	b.mu.Lock()
	b.checked = time.Time{}
	b.mu.Unlock()
}

// bulkFresh is how long a listing of bulk/ serves Peek before it is read
// again: push --wait asks about thousands of keys a round.
const bulkFresh = 20 * time.Millisecond

// bulkEntries returns the entries of bulk files by key, listing bulk/
// again if the last listing is older than maxAge.
func (q *Queue) bulkEntries(maxAge time.Duration) (map[string]*Entry, error) {
	b := &q.bulk
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byKey != nil && time.Since(b.checked) < maxAge {
		return b.byKey, nil
	}
	b.checked = time.Now()
	changed := b.byKey == nil
	if b.files == nil {
		b.files = map[string][]*Entry{}
	}
	live := map[string]bool{}
	for try := 0; ; try++ {
		names, err := q.BulkNames()
		if err != nil {
			return nil, err
		}
		if bulkListed != nil {
			bulkListed()
		}
		clear(live)
		gone := false
		for _, n := range names {
			if !bulkName(n) {
				continue
			}
			live[n] = true
			if _, ok := b.files[n]; ok {
				continue
			}
			var es []*Entry
			if _, err := q.ReadBulk(n, func(e *Entry) { es = append(es, e) }); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					gone = true // replaced meanwhile: see relists
					continue
				}
				return nil, err
			}
			b.files[n] = es
			changed = true
		}
		if !gone || try == relists {
			break
		}
	}
	for n := range b.files {
		if !live[n] {
			delete(b.files, n)
			changed = true
		}
	}
	if changed {
		b.byKey = map[string]*Entry{}
		for _, es := range b.files {
			for _, e := range es {
				o := b.byKey[e.key]
				if o == nil || Before(e, o) {
					b.byKey[e.key] = e
				}
				// Queued twice, once by push --pin: pinned either way.
				if o != nil && (e.Pinned || o.Pinned) {
					b.byKey[e.key].Pinned = true
				}
			}
		}
	}
	return b.byKey, nil
}

// bulkKeys lists the keys of the bulk files' pairs, each once (see Keys):
// those of files that hold no retry state, then those of files that do.
func (q *Queue) bulkKeys() (plain, stated []string, err error) {
	b := &q.bulk
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys == nil {
		b.keys, b.stated = map[string][]string{}, map[string]bool{}
	}
	live := map[string]bool{}
	var names []string
	for try := 0; ; try++ {
		if names, err = q.BulkNames(); err != nil {
			return nil, nil, err
		}
		if bulkListed != nil {
			bulkListed()
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !bulkName(n) })
		clear(live)
		gone := false
		for _, n := range names {
			if _, ok := b.keys[n]; !ok {
				ks, st, err := q.readBulkKeys(n)
				if errors.Is(err, fs.ErrNotExist) {
					gone = true // replaced meanwhile: see relists
					continue
				} else if err != nil {
					return nil, nil, err
				}
				b.keys[n], b.stated[n] = ks, st
			}
			live[n] = true
		}
		if !gone || try == relists {
			break
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !live[n] })
	slices.Sort(names)
	of := strings.Join(names, "/")
	if b.all != nil && b.allOf == of {
		return b.all, b.allStated, nil
	}
	for n := range b.keys {
		if !live[n] {
			delete(b.keys, n)
			delete(b.stated, n)
		}
	}
	plain, stated = onceEach(names, b.keys, func(n string) bool { return !b.stated[n] }), onceEach(names, b.keys, func(n string) bool { return b.stated[n] })
	b.all, b.allStated, b.allOf = plain, stated, of
	return plain, stated, nil
}

// relists bounds how often a reader lists bulk/ again on finding a listed
// file gone: the worker links a file's replacement before it removes the
// file, so the listing after a file went holds what it kept, which the
// first listing may have missed (its entries were then left out of that
// look, and push --wait stopped waiting for them).
const relists = 3

// bulkListed runs after each listing of bulk/ by a reader, for the tests.
var bulkListed func()

// onceEach lists the keys of the files named that pick takes, each once.
func onceEach(names []string, keys map[string][]string, pick func(string) bool) []string {
	var lists [][]string
	total := 0
	for _, n := range names {
		if pick(n) {
			lists = append(lists, keys[n])
			total += len(keys[n])
		}
	}
	if len(lists) == 1 {
		return lists[0]
	}
	out := make([]string, 0, total)
	seen := make(map[string]bool, total)
	for _, ks := range lists {
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// readBulkKeys reads the keys of a bulk file's pairs, each once, from the
// target and path that start each line as appendNew writes it; a line in
// another form is decoded whole, and left out when it is not an entry.
// stated tells a file where a line holds a retry state: the hook and push
// write none (appendNew), the worker's Apply writes changed entries with
// theirs (writeUpdated), and a replaced file keeps its lines.
func (q *Queue) readBulkKeys(name string) (keys []string, stated bool, err error) {
	f, _, err := safeopen.Open(q.path(bulkDir, name), safeopen.Options{NoFollow: true})
	if err != nil {
		return nil, false, fmt.Errorf("reading bulk file: %w", err)
	}
	defer f.Close()
	lp := newLineParser()
	seen := map[string]bool{}
	err = eachLine(f, func(line []byte) {
		// A quote inside a JSON string is escaped, so only a key can
		// read so; a line that says it and holds no retry state is
		// only looked at more closely.
		stated = stated || bytes.Contains(line, []byte(`"attempts":`))
		key, ok := lp.key(line)
		if !ok {
			if e, k := lp.parse(line); e != nil {
				key, ok = k, true
			}
		}
		if ok && !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	})
	if err != nil {
		return nil, false, fmt.Errorf("reading bulk file %s: %w", q.path(bulkDir, name), err)
	}
	return keys, stated, nil
}

// key reads the key of a line from the target and path it starts with,
// as appendNew writes them; false for a line in any other form.
func (lp *lineParser) key(line []byte) (string, bool) {
	c, ok := jsonline.New(line)
	if !ok || len(line) > maxEntrySize || !c.Lit(`{"target":"`) {
		return "", false
	}
	t, ok := c.Raw()
	if !ok || len(t) == 0 || !c.Lit(`,"path":"`) {
		return "", false
	}
	ps, ok := c.Raw()
	if !ok {
		return "", false
	}
	p, err := storepath.Parse(lp.storeDir, string(ps))
	if err != nil {
		return "", false
	}
	target := lp.recent.str(t, &lp.recent.target)
	return p.Hash + "." + lp.digest(target), true
}

// digest is TargetDigest, made once per target.
func (lp *lineParser) digest(target string) string {
	d, ok := lp.digests[target]
	if !ok {
		d = TargetDigest(target)
		if len(lp.digests) < 64 {
			lp.digests[target] = d
		}
	}
	return d
}

// bulkGet returns a copy of the entry with that key in a bulk file.
func (q *Queue) bulkGet(key string) (*Entry, bool) {
	all, err := q.bulkEntries(bulkFresh)
	if err != nil {
		return nil, false
	}
	e, ok := all[key]
	if !ok {
		return nil, false
	}
	c := *e
	return &c, true
}

// BulkTarget returns the target of the entry with that key in a bulk
// file, without copying it. `wait` counts what is left by target: asked
// through Peek, each of a push --closure's 10,000 entries first cost a
// failed open in entries/, and its first look took 0.13 s, beside the
// worker's round before its pusher call (issue 22).
func (q *Queue) BulkTarget(key string) (string, bool) {
	all, err := q.bulkEntries(bulkFresh)
	if err != nil {
		return "", false
	}
	e, ok := all[key]
	if !ok {
		return "", false
	}
	return e.Target, true
}
