package cli

import (
	"bytes"
	"strings"
	"testing"
)

// errorf passed C1 bytes and BEL as they were (escape.Controls says
// how they are written).
func TestErrorfEscapesControls(t *testing.T) {
	var out bytes.Buffer
	e := &env{stderr: &out}
	e.errorf("push: %s", "x\x9b2J\x9d0;owned\x07")
	if strings.ContainsAny(out.String(), "\x9b\x9d\x07") {
		t.Errorf("errorf printed a C1 byte or BEL as it is: %q", out.String())
	}
}
