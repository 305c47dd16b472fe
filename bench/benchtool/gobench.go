package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var gomaxprocsSuffix = regexp.MustCompile(`-\d+$`)

// runGobench turns `go test -bench` output into results: for each
// benchmark line, its ns/op and the custom per-second metric.
func runGobench(args []string) error {
	fs := flag.NewFlagSet("gobench", flag.ContinueOnError)
	in := fs.String("in", "", "go test -bench output")
	metric := fs.String("metric", "", "per-second metric to read, e.g. decisions/s")
	results := fs.String("results", "", "append results here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	var rs []Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		r := Result{Kind: "gobench", Name: gomaxprocsSuffix.ReplaceAllString(fields[0], "")}
		r.Runs, _ = strconv.Atoi(fields[1])
		for i := 3; i < len(fields); i++ {
			v, err := strconv.ParseFloat(fields[i-1], 64)
			if err != nil {
				continue
			}
			switch fields[i] {
			case "ns/op":
				r.MedianMS = v / 1e6
			case *metric:
				r.PerSecond = v
			}
		}
		if r.PerSecond == 0 {
			return fmt.Errorf("%s: no %s in %q", *in, *metric, sc.Text())
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return fmt.Errorf("%s: no benchmark lines", *in)
	}
	return appendResults(*results, rs...)
}
