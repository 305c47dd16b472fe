// Command benchtool is the Go side of `make bench` (bench/run.sh): what a
// shell does badly. A harness, not part of the product.
//
//	holdlock -queue DIR[,DIR] [-- CMD...]          hold the queues' worker locks (around CMD, or until SIGTERM)
//	fill -config FILE -target T -n N [-record]     N made-up paths queued for a target (or recorded as pushed)
//	fakeniks3 -dir D -port-file F                  the part of niks3's server API niks3-hook uses
//	report -results FILE -doc BENCHMARKS.md        fill the document's tables (report.go)
package main

import (
	"fmt"
	"os"
)

func main() {
	cmds := map[string]func([]string) error{"holdlock": runHoldLock, "fill": runFill,
		"fakeniks3": runFakeNiks3, "report": runReport}
	if len(os.Args) < 2 || cmds[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: benchtool holdlock|fill|fakeniks3|report [flags]")
		os.Exit(2)
	}
	if err := cmds[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
