package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// testQueue makes a queue in a directory of its own, with no
// configuration from the environment; dir is where its configs may go.
func testQueue(t *testing.T) (q *queue.Queue, dir string) {
	t.Helper()
	for _, k := range []string{config.EnvConfig, config.EnvName("cache"), config.EnvName("queue.dir")} {
		t.Setenv(k, "")
	}
	dir = t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	return q, dir
}

// mainConf writes a hook.conf whose target "main" takes every path into
// the queue qdir, with more lines (tables) after.
func mainConf(t testing.TB, file, qdir, more string) {
	t.Helper()
	body := fmt.Sprintf("cache = \"main\"\nallow = [\"*\"]\n[queue]\ndir = %q\n%s", qdir, more)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mainQueue is testQueue with its mainConf, whose path it returns.
func mainQueue(t *testing.T) (*queue.Queue, string) {
	t.Helper()
	q, dir := testQueue(t)
	file := filepath.Join(dir, "hook.conf")
	mainConf(t, file, q.Dir, "")
	return q, file
}

// loadedEnv is a command's env for the config file, with what it says in
// out, and the config it loaded.
func loadedEnv(t *testing.T, file string) (*env, *config.Config, *bytes.Buffer) {
	t.Helper()
	out := &bytes.Buffer{}
	e := &env{ctx: context.Background(), configFlag: file, stdout: out, stderr: out}
	c, err := e.load()
	if err != nil {
		t.Fatal(err)
	}
	return e, c, out
}
