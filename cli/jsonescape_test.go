package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
)

// A history line written before the pusher escaped bidirectional
// controls (or quoting Nix's stderr, which no cutter escapes) holds
// U+202E raw. log and status escape it in text, but log --json and
// status --json wrote it as it was (encoding/json escapes neither it
// nor the C1 controls an older line may hold), so the record read
// backwards on the terminal. What the file says is not trusted there
// either: each is written as \uNNNN, which reads back the same.
func TestJSONOutputEscapesOldHistoryLines(t *testing.T) {
	q, file := mainQueue(t)
	path := "/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-app-1.0"
	line := `{"time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","target":"main","path":"` + path +
		`","outcome":"failed","reason":"cachix: x` + "\u202e" + `terces-olleh ` + "\u009b2J\u2066" + `"}` + "\n"
	if err := os.WriteFile(filepath.Join(q.Dir, history.File), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func(*env) int{
		"log --json":    func(e *env) int { return runLog(e, &logOptions{json: true}) },
		"status --json": func(e *env) int { return runStatus(e, &statusOptions{json: true}) },
	} {
		e, _, out := loadedEnv(t, file)
		run(e)
		if strings.ContainsAny(out.String(), "\u202e\u009b\u2066") || !strings.Contains(out.String(), `x\u202eterces-olleh \u009b2J\u2066`) {
			t.Errorf("%s wrote the reason other than escaped:\n%q", name, out.String())
		}
	}
}
