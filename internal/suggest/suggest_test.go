package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	commands := []string{"status", "push", "wait", "log", "doctor", "explain", "forget", "retry"}
	for _, c := range []struct{ in, want string }{
		{"stauts", "status"},
		{"stat", "status"},
		{"pus", "push"},
		{"expalin", "explain"},
		{"frobnicate", ""},
		{"x", ""}, // one letter is no typo of a name
		{"lo", "log"},
		{"wiat", "wait"},
	} {
		if got := Closest(c.in, slices.Values(commands)); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
