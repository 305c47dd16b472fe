package cli

import (
	"sort"
	"unicode"
)

// The progress line is redrawn in place, and one that wraps breaks the
// redraw: its length is counted in terminal columns, as wcwidth counts
// them. A character counted narrower than a terminal draws it makes the
// line wrap; one counted wider only shortens it: what is not sure (the
// emoji of the symbol blocks) is counted wide.

// wideRanges are the East Asian Wide and Fullwidth characters (Unicode's
// EastAsianWidth.txt, W and F), and the emoji drawn two columns wide.
var wideRanges = [][2]rune{
	{0x1100, 0x115f}, {0x231a, 0x231b}, {0x2329, 0x232a}, {0x23e9, 0x23ec},
	{0x23f0, 0x23f0}, {0x23f3, 0x23f3}, {0x25fd, 0x25fe}, {0x2600, 0x27bf},
	{0x2b1b, 0x2b1c}, {0x2b50, 0x2b50}, {0x2b55, 0x2b55}, {0x2e80, 0x303e},
	{0x3041, 0x33ff}, {0x3400, 0x4dbf}, {0x4e00, 0x9fff}, {0xa000, 0xa4cf},
	{0xa960, 0xa97f}, {0xac00, 0xd7a3}, {0xf900, 0xfaff}, {0xfe10, 0xfe19},
	{0xfe30, 0xfe6f}, {0xff00, 0xff60}, {0xffe0, 0xffe6}, {0x16fe0, 0x18cff},
	{0x1b000, 0x1b2ff}, {0x1f004, 0x1f004}, {0x1f0cf, 0x1f0cf}, {0x1f18e, 0x1f18e},
	{0x1f191, 0x1f19a}, {0x1f200, 0x1f2ff}, {0x1f300, 0x1f64f}, {0x1f680, 0x1f6ff},
	{0x1f7e0, 0x1f7eb}, {0x1f90c, 0x1f9ff}, {0x1fa70, 0x1faff}, {0x20000, 0x2fffd},
	{0x30000, 0x3fffd},
}

// runeWidth is how many columns a terminal gives r: 0 for a combining
// mark, a format character (a zero-width space or joiner) and Hangul's
// medial and final jamo, which join the character before; 2 for a wide
// one; 1 for the rest.
func runeWidth(r rune) int {
	switch {
	case r == 0xad: // the soft hyphen is drawn
		return 1
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || 0x1160 <= r && r <= 0x11ff:
		return 0
	}
	i := sort.Search(len(wideRanges), func(i int) bool { return wideRanges[i][1] >= r })
	if i < len(wideRanges) && wideRanges[i][0] <= r {
		return 2
	}
	return 1
}

// width is how many columns s takes on a terminal.
func width(s string) int {
	w := 0
	for _, r := range s {
		w += runeWidth(r)
	}
	return w
}
