package metrics

import (
	"bytes"
	"math"
	"strconv"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
)

// textWriter writes Prometheus' text exposition format (version 0.0.4):
// per family a HELP and a TYPE line, then its samples. Only what this
// package needs: no timestamps, no exemplars.
type textWriter struct {
	b bytes.Buffer
}

// label is one name="value" pair; names are this package's constants,
// values are escaped.
type label struct{ name, value string }

func (w *textWriter) family(name, typ, help string) {
	w.b.WriteString("# HELP ")
	w.b.WriteString(name)
	w.b.WriteByte(' ')
	w.b.WriteString(helpEscaper.Replace(help))
	w.b.WriteString("\n# TYPE ")
	w.b.WriteString(name)
	w.b.WriteByte(' ')
	w.b.WriteString(typ)
	w.b.WriteByte('\n')
}

func (w *textWriter) sample(name string, labels []label, v float64) {
	w.b.WriteString(name)
	if len(labels) > 0 {
		w.b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.b.WriteByte(',')
			}
			w.b.WriteString(l.name)
			w.b.WriteString(`="`)
			// The format is UTF-8: a name from the environment may not
			// be, and one bad byte makes node exporter drop the file.
			// Its controls are escaped as every other output's: status
			// --prometheus prints to a terminal, and the reasons come
			// from state.json, not from a fixed list.
			w.b.WriteString(valueEscaper.Replace(escape.Controls(strings.ToValidUTF8(l.value, "\uFFFD"))))
			w.b.WriteByte('"')
		}
		w.b.WriteByte('}')
	}
	w.b.WriteByte(' ')
	w.b.WriteString(formatFloat(v))
	w.b.WriteByte('\n')
}

// The format's escapes: in HELP, backslash and newline; in a label
// value, also the double quote.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
