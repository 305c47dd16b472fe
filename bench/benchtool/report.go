package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runReport fills the generated tables of a document: the lines between
// `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` are replaced with the
// table NAME made from the results; the prose around them is left alone.
func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	results := fs.String("results", "", "results file (key<TAB>value lines)")
	doc := fs.String("doc", "", "the document whose tables to fill")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err1 := os.ReadFile(*results)
	text, err2 := os.ReadFile(*doc)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	r := &res{m: map[string]string{}}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			r.m[k] = v
		}
	}
	for _, m := range marker.FindAllStringSubmatch(string(text), -1) {
		if tables[m[1]] == nil {
			return fmt.Errorf("%s: no table %q", *doc, m[1])
		}
	}
	out := marker.ReplaceAllStringFunc(string(text), func(m string) string {
		name := marker.FindStringSubmatch(m)[1]
		return "<!-- bench:" + name + " -->\n" + tables[name](r) + "<!-- /bench:" + name + " -->"
	})
	return os.WriteFile(*doc, []byte(out), 0o644)
}

var marker = regexp.MustCompile(`(?s)<!-- bench:([a-z]+) -->.*?<!-- /bench:[a-z]+ -->`)

type res struct{ m map[string]string }

// f is a number, NaN when it was not measured (a duration like "9.1s"
// counts in seconds).
func (r *res) f(key string) float64 {
	v := r.m[key]
	if d, err := time.ParseDuration(v); err == nil && strings.ContainsAny(v, "smh") {
		return d.Seconds()
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return x
}

// md is the median of the values of format's keys for rounds 1 to 99.
func (r *res) md(format string) float64 { v, _ := r.med(format); return v }

// med is the median of the values of format's keys for rounds 1 to 99,
// and the values.
func (r *res) med(format string) (float64, []float64) {
	var xs []float64
	for i := 1; i < 100; i++ {
		if v := r.f(fmt.Sprintf(format, i)); !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	return median(xs), xs
}

// median is the middle of xs (NaN for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

func ms(s float64) string  { return num(s*1000, 2) + " ms" }
func sec(s float64) string { return num(s, 2) + " s" }
func x(a, b float64) string {
	if math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
func mib(kb float64) string { return num(kb/1024, 1) + " MiB" }
func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "—"
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if v < 10000 {
		return s
	}
	i := strings.IndexByte(s+".", '.')
	for j := i - 3; j > 0; j -= 3 {
		s = s[:j] + "," + s[j:]
	}
	return s
}
func nums(xs []float64, prec int) string {
	var out []string
	for _, v := range xs {
		out = append(out, num(v, prec))
	}
	return strings.Join(out, ", ")
}
func verdict(ok bool, have ...float64) string {
	if slices.ContainsFunc(have, math.IsNaN) {
		return "not measured"
	}
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// table renders rows under a header.
func table(head []string, rows [][]string) string {
	s := "| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat("---|", len(head)) + "\n"
	for _, row := range rows {
		s += "| " + strings.Join(row, " | ") + " |\n"
	}
	return s
}

// series renders a hyperfine series, its commands in the order they ran:
// each one's median, p99, σ, CPU (user+system, mean) and runs, and its
// median's ratio to the series' floor.
func (r *res) series(s string) string {
	floor := r.f(s + "/floor.median")
	var rows [][]string
	for _, n := range strings.Split(r.m[s+".names"], "|") {
		k := s + "/" + n
		label := n
		if n == "floor" {
			label = "floor: a Go binary that does nothing (`bench/floor`)"
		}
		rows = append(rows, []string{label, num(r.f(k+".runs"), 0), ms(r.f(k + ".median")), ms(r.f(k + ".p99")), ms(r.f(k + ".sd")), ms(r.f(k + ".cpu")), x(r.f(k+".median"), floor)})
	}
	return table([]string{"Command", "Runs", "Median", "p99", "σ", "CPU", "Median / floor"}, rows)
}

var tables = map[string]func(*res) string{
	"machine": func(r *res) string {
		var rows [][]string
		for _, k := range []string{"date", "mode", "nproc", "cpu", "memory", "kernel", "fs", "nix", "go", "hyperfine", "commit", "size_hook", "load_start", "load_end", "elapsed", "peer_queued-build-hook", "peer_niks3-hook"} {
			if v, ok := r.m["fact."+k]; ok {
				rows = append(rows, []string{k, v})
			}
		}
		rows = append(rows, []string{"**bare exec** (the floor, a Go binary that does nothing, median)", "**" + ms(r.f("lat/floor.median")) + "**"})
		return table([]string{"", ""}, rows)
	},
	"targets":   targets,
	"latency":   latency,
	"depth":     func(r *res) string { return r.series("depth") },
	"hookwork":  hookwork,
	"twoqueues": twoqueues,
	"inproc":    inproc,
	"buildloop": buildloop,
	"closure":   closure,
	"phases":    phases,
	"big":       big,
	"memory":    memory,
	"peers":     peers,
}
