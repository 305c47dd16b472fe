package history

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
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
	return append(append(b, line...), '\n'), nil
}

// parseRecord reads a line as appendRecord writes it; ok false for any
// other, which encoding/json reads then.
func parseRecord(line []byte) (rec Record, ok bool) {
	for _, c := range line {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return Record{}, false
		}
	}
	r := line
	lit := func(s string) bool {
		if !bytes.HasPrefix(r, []byte(s)) {
			return false
		}
		r = r[len(s):]
		return true
	}
	str := func(s *string) bool {
		i := bytes.IndexByte(r, '"')
		if i < 0 {
			return false
		}
		*s = string(r[:i])
		r = r[i+1:]
		return true
	}
	num := func() (int64, bool) {
		i := 0
		if i < len(r) && r[i] == '-' {
			i++
		}
		d := i
		for i < len(r) && '0' <= r[i] && r[i] <= '9' {
			i++
		}
		// JSON numbers: no leading zero, no empty digits.
		if i == d || r[d] == '0' && i > d+1 {
			return 0, false
		}
		v, err := strconv.ParseInt(string(r[:i]), 10, 64)
		r = r[i:]
		return v, err == nil
	}
	var stamp string
	if !lit(`{"time":"`) || !str(&stamp) || rec.Time.UnmarshalText([]byte(stamp)) != nil {
		return Record{}, false
	}
	if !lit(`,"target":"`) || !str(&rec.Target) || !lit(`,"path":"`) || !str(&rec.Path) || !lit(`,"outcome":"`) || !str(&rec.Outcome) {
		return Record{}, false
	}
	for _, f := range []struct {
		key string
		s   *string
	}{{`,"reason":"`, &rec.Reason}, {`,"listed_in":"`, &rec.Listed}} {
		if lit(f.key) && !str(f.s) {
			return Record{}, false
		}
	}
	if lit(`,"batch":`) {
		n, ok := num()
		if !ok || int64(int(n)) != n {
			return Record{}, false
		}
		rec.Batch = int(n)
	}
	if lit(`,"duration_ns":`) {
		n, ok := num()
		if !ok {
			return Record{}, false
		}
		rec.Duration = time.Duration(n)
	}
	if lit(`,"pin":"`) && !str(&rec.Pin) {
		return Record{}, false
	}
	if string(r) != "}" {
		return Record{}, false
	}
	return rec, true
}
