// Package suggest finds the name a typo meant, for "did you mean"
// messages: commands, flags, config keys, tables and variables.
package suggest

import "iter"

// Closest is the name among known nearest to name, within an edit
// distance of 3 and less than name's length (so that "x" suggests
// nothing), the first in sorted order on a tie; "" when none is.
func Closest(name string, known iter.Seq[string]) string {
	best, bestD := "", min(4, len(name))
	for k := range known {
		if len(name)-len(k) >= bestD || len(k)-len(name) >= bestD {
			continue // at least that far: not worth the quadratic distance
		}
		if d := distance(name, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
