package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// WriteFile replaces file with data atomically: a new file in the same
// directory, mode 0644 (node exporter runs as its own user), renamed over
// the old one, so that a scrape never reads half a file. The temporary
// name starts with a dot and does not end in .prom, so the textfile
// collector never reads it.
//
// The directories leading to file must pass the trust rule: the worker
// writes as root, and a directory another user could swap (a symlink to
// /etc) would make root create a file where that user chose.
func WriteFile(file string, data []byte) error {
	if err := trust.CheckParents(file); err != nil {
		return fmt.Errorf("metrics.file: %w", err)
	}
	dir, base := filepath.Split(file)
	tmpPrefix := "." + base + ".tmp"
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing metrics to %s: %w", file, err)
	}
	// A worker killed between the create and the rename left its
	// temporary file: one more per crash in node exporter's directory.
	// Only one worker writes the file (it holds the queue's lock), so any
	// other is such a leftover.
	if des, err := os.ReadDir(filepath.Dir(file)); err == nil {
		for _, de := range des {
			if strings.HasPrefix(de.Name(), tmpPrefix) && !de.IsDir() {
				os.Remove(filepath.Join(filepath.Dir(file), de.Name()))
			}
		}
	}
	return nil
}
