package history

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/jsonline"
)

// A pushed batch of 10,000 paths is 10,000 records: the worker writes
// them between the pusher's end and the entries leaving the queue, and
// `wait` reads them before it returns, so both are on a drain's path
// (issue 22). encoding/json took 4-5 µs a record each way; appendRecord
// and parseRecord write and read the records the worker writes for a
// batch (store paths, target names, outcomes: plain ASCII) directly, and
// leave anything else to encoding/json. Both give the same bytes and the
// same Record for what they take (TestLineAsJSON, FuzzParseRecord).

// plain reports whether s goes into a JSON string as it is, and comes
// out of encoding/json's encoder the same: printable ASCII, no quote or
// backslash, nothing it escapes for HTML.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendRecord appends r as one JSON line, as encoding/json's Encoder
// writes it; false (and b unchanged) when r is not one it writes alone.
func appendRecord(b []byte, r *Record) ([]byte, bool) {
	if y := r.Time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	for _, s := range []string{r.Target, r.Path, r.Outcome, r.Reason, r.Listed, r.Pin} {
		if !plain(s) {
			return b, false
		}
	}
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(append(append(b, `","target":"`...), r.Target...), `","path":"`...)
	b = append(append(append(b, r.Path...), `","outcome":"`...), r.Outcome...)
	b = append(b, '"')
	if r.Reason != "" {
		b = append(append(append(b, `,"reason":"`...), r.Reason...), '"')
	}
	if r.Listed != "" {
		b = append(append(append(b, `,"listed_in":"`...), r.Listed...), '"')
	}
	if r.Batch != 0 {
		b = strconv.AppendInt(append(b, `,"batch":`...), int64(r.Batch), 10)
	}
	if r.Duration != 0 {
		b = strconv.AppendInt(append(b, `,"duration_ns":`...), int64(r.Duration), 10)
	}
	if r.Pin != "" {
		b = append(append(append(b, `,"pin":"`...), r.Pin...), '"')
	}
	return append(b, "}\n"...), true
}

// encodeRecord appends r as a JSON line, by appendRecord or encoding/json.
func encodeRecord(b []byte, r *Record) ([]byte, error) {
	if out, ok := appendRecord(b, r); ok {
		return out, nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	// The file holds no control character (a reason may hold Nix's
	// stderr): DEL, C1 and the bidi controls, which encoding/json
	// leaves, are escaped too.
	return append(escape.JSON(b, line), '\n'), nil
}

// parseRecord reads a line as appendRecord writes it; ok false for any
// other, which encoding/json reads then.
func parseRecord(line []byte) (Record, bool) {
	var rec Record
	c, ok := jsonline.New(line)
	if !ok || !c.Lit(`{"time":"`) {
		return Record{}, false
	}
	if stamp, ok := c.Raw(); !ok || rec.Time.UnmarshalText(stamp) != nil {
		return Record{}, false
	}
	if !c.Lit(`,"target":"`) || !str(&c, &rec.Target) || !c.Lit(`,"path":"`) || !str(&c, &rec.Path) || !c.Lit(`,"outcome":"`) || !str(&c, &rec.Outcome) {
		return Record{}, false
	}
	if c.Lit(`,"reason":"`) && !str(&c, &rec.Reason) || c.Lit(`,"listed_in":"`) && !str(&c, &rec.Listed) {
		return Record{}, false
	}
	if c.Lit(`,"batch":`) {
		n, ok := c.Int()
		if !ok || int64(int(n)) != n {
			return Record{}, false
		}
		rec.Batch = int(n)
	}
	if c.Lit(`,"duration_ns":`) {
		n, ok := c.Int()
		if !ok {
			return Record{}, false
		}
		rec.Duration = time.Duration(n)
	}
	if c.Lit(`,"pin":"`) && !str(&c, &rec.Pin) || !c.End("}") {
		return Record{}, false
	}
	return rec, true
}

// str reads the rest of a string into *s.
func str(c *jsonline.Cursor, s *string) bool {
	v, ok := c.Str()
	*s = v
	return ok
}
