package main

import "fmt"

// scanSection reports the hook's scan of a build's outputs for references
// between them (issue 18) on the crafted 302-output case, against reading
// the same bytes once, from BenchmarkSiblingScan302 in the same run.
func scanSection(rs *results, p func(string, ...any)) {
	scan, ok1 := rs.get("gobench", "BenchmarkSiblingScan302/scan")
	read, ok2 := rs.get("gobench", "BenchmarkSiblingScan302/read")
	if !ok1 || !ok2 {
		return
	}
	p("\n### The hook's sibling scan\n\n")
	p("A build with 302 outputs, one of them a 60 MiB file of base32 text made of pieces of its 301 siblings' hash parts (the crafted build of issue 18): the hook's scan of it for references to its siblings, its deadline lifted so that the pass is measured to the end, took **%s** (%s MB/s, %s); reading the same file once into `io.Discard`, the floor, took %s (%s MB/s): %s the floor. The scan is one pass over the bytes whatever the number of siblings (each 32-byte base32 window is looked up in a set), so on the hook's path its deadline (300 ms, checked per 256 KiB chunk and per 256 directory entries) bounds what a build can cost; `TestHookScan302Outputs` (test/scan_test.go) runs the real build and the hook.\n",
		ms(scan.MedianMS), thousands(scan.PerSecond), runs(scan.Runs), ms(read.MedianMS), thousands(read.PerSecond), ratio(scan.MedianMS/read.MedianMS))
}

func runs(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}
