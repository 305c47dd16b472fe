package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// A reloaded config that names another log.file: prepare opens it (or
// fails, and the worker keeps its config and log), commit switches the
// worker's log over and applies log.level.
func TestWorkerLogFollowsReload(t *testing.T) {
	dir := t.TempDir()
	cfg := func(file, level string) *config.Config {
		return &config.Config{Log: config.Log{File: filepath.Join(dir, file), Level: level, MaxSize: 1 << 20}}
	}
	l, err := openWorkerLog(cfg("a.log", "info"), false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	l.log.Info("first")
	if _, err := l.prepare(cfg("missing/b.log", "info")); err == nil || !strings.Contains(err.Error(), "log.file") {
		t.Errorf("prepare with a log.file that cannot be opened = %v", err)
	}
	l.log.Info("still a")
	commit, err := l.prepare(cfg("b.log", "warn"))
	if err != nil {
		t.Fatal(err)
	}
	commit()
	l.log.Info("dropped by the level")
	l.log.Warn("in b")
	read := func(f string) string { b, _ := os.ReadFile(filepath.Join(dir, f)); return string(b) }
	if a := read("a.log"); !strings.Contains(a, "first") || !strings.Contains(a, "still a") || strings.Contains(a, "in b") {
		t.Errorf("a.log:\n%s", a)
	}
	if b := read("b.log"); !strings.Contains(b, "in b") || strings.Contains(b, "dropped by the level") {
		t.Errorf("b.log:\n%s", b)
	}
}
