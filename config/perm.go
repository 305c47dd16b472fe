package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/safeopen"
)

// maxTokenSize bounds a token file; a Cachix token is a few hundred bytes.
const maxTokenSize = 64 << 10

// CheckOwnership refuses a file that root should not trust: one owned by
// another user, or writable by group or others. Running as root, the hook
// runs the programs such a file names, so anyone who could write it could
// run code as root.
func CheckOwnership(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if st.Uid != 0 {
		return fmt.Errorf("refusing %s: running as root, and it is owned by uid %d, not root", path, st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("refusing %s: running as root, and it is writable by group or others (mode %04o); run: chmod go-w %s", path, perm, path)
	}
	return nil
}

// ReadToken reads a secret from file, refusing, when running as root, a
// file that another user owns or can write. The error never contains the
// file's content.
func ReadToken(file string) (string, error) {
	// Not blocking on a FIFO, regular files only; a token is small.
	f, fi, err := safeopen.Open(file, safeopen.Options{MaxSize: maxTokenSize})
	if err != nil {
		return "", fmt.Errorf("reading token: %w", err)
	}
	defer f.Close()
	if os.Geteuid() == 0 {
		if err := CheckOwnership(file, fi); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return "", fmt.Errorf("reading token file %s: %w", file, err)
	}
	if len(b) > maxTokenSize {
		return "", fmt.Errorf("refusing token file %s: it grew past the limit of %d bytes", file, maxTokenSize)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}
