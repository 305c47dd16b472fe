package config

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "write hook.conf.example from the schema")

// hook.conf.example is made from the schema: a key added, renamed or
// documented anew shows there, or this fails (go generate
// ./internal/config writes it).
func TestExampleIsCurrent(t *testing.T) {
	const file = "../../hook.conf.example"
	want := Example()
	if *update {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("hook.conf.example is not what the schema makes: run go generate ./internal/config")
	}
}
