package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// DirError is CheckDir's refusal of a directory the queue checks itself
// (the queue directory or a subdirectory); a parent that fails the trust
// rule comes back as a *trust.Error instead.
type DirError struct {
	Dir string // the directory refused
	Err error
}

func (e *DirError) Error() string { return e.Err.Error() }
func (e *DirError) Unwrap() error { return e.Err }

// CheckDir applies, without creating anything, the checks Open and the
// worker apply to dir: its parents by the trust rule, dir itself and its
// subdirectories by mkdirPrivate's rule. doctor calls it so that it
// passes exactly the directories the hook and the worker accept. What
// does not exist yet is no error: Open makes it, private.
func CheckDir(dir string) error {
	if err := trust.CheckParents(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue directory: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, entriesDir), filepath.Join(dir, tmpDir), filepath.Join(dir, corruptDir), filepath.Join(dir, droppedDir)} {
		err := checkPrivate(d, d == dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && d == dir:
			return nil
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return &DirError{Dir: d, Err: err}
		}
	}
	return nil
}
