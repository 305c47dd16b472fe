package config

import (
	"flag"
	"os"
	"testing"
	"time"
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

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", 2 * time.Minute: "2m", time.Second: "1s", 1500 * time.Millisecond: "1.5s"} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
