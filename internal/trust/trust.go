// Package trust decides whether a file, program or directory may be used
// by the running user: the one rule for everything the hook and the worker
// read or run (config, token file, cachix, Nix's programs, queue dir).
//
// The rule is OpenSSH's StrictModes, applied to the real path: resolved
// (symlinks followed), the path must be owned by root or by the running
// user and writable by nobody else, and so must every directory above it
// up to /. A sticky directory that others can write (/tmp, or /nix/store,
// which is root:nixbld 1775) is accepted, because nobody else can rename
// or delete an entry they do not own in it, and every entry below it is
// checked in turn. Programs in the Nix store pass: root owns them.
//
// Running as root this keeps any other user from steering what root runs
// or reads; running as a user, from steering that user's worker, which
// holds their token.
package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Kind says what the checked path is used as; it decides the extra checks
// and the wording of the fix.
type Kind int

const (
	// File is read (a config file).
	File Kind = iota
	// Secret is read and must also be unreadable by others (a token
	// file), like an SSH private key.
	Secret
	// Program is executed.
	Program
	// Dir is a directory the caller writes into (the queue directory's
	// parents are checked as Dir).
	Dir
)

// Error is a refusal. It names the path that failed (the checked path or a
// directory above it), its owner and mode, and the command that fixes it.
type Error struct {
	Path    string      // the path as given
	Bad     string      // the real path that failed: Path resolved, or a directory above it
	Parent  bool        // Bad is a directory above Path
	Uid     uint32      // Bad's owner
	Mode    fs.FileMode // Bad's mode
	Problem string      // what is wrong with Bad: "is writable by group or others"
	Fix     string      // a shell command that makes it acceptable
}

func (e *Error) Error() string {
	who := "the running user"
	if os.Geteuid() == 0 {
		who = "root"
	}
	subject, it := e.Path, "it"
	switch {
	case e.Parent:
		it = "its directory " + e.Bad
	case e.Bad != absPath(e.Path):
		subject = e.Path + " (really " + e.Bad + ")"
	}
	mode := e.Mode.Perm()
	if e.Mode&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return fmt.Sprintf("refusing %s: running as %s, and %s %s (owner %s, mode %04o); run: %s",
		subject, who, it, e.Problem, OwnerName(e.Uid), mode, e.Fix)
}

// OwnerName renders a uid as "name (uid N)", or "uid N" when unknown.
func OwnerName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

// trusted reports whether uid may own what the running user relies on.
func trusted(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// Check applies the rule to path, used as kind, and returns its real path.
// Every directory passed on the way is checked, those that hold a symlink
// followed included, so the path can be opened or run as given (keeping
// argv[0], which nix-store needs) and still lead to what was checked. A
// path that does not exist is an error wrapping fs.ErrNotExist.
func Check(path string, kind Kind) (string, error) {
	real, fi, err := walk(path)
	if err != nil {
		return "", err
	}
	if err := checkOne(path, real, fi, kind, false); err != nil {
		return "", err
	}
	return real, nil
}

// CheckParents applies the rule to the directories leading to path (not
// to path itself, which may not exist yet), for a path the caller checks
// by other means, such as the queue directory, which must be the running
// user's own.
func CheckParents(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	dir, fi, err := walkAs(path, filepath.Dir(abs))
	if err != nil {
		return err
	}
	return checkOne(path, dir, fi, Dir, true)
}

func walk(path string) (string, fs.FileInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return walkAs(path, abs)
}

// walkAs resolves abs one component at a time, checking each directory it
// passes through as a Dir, and returns the real path and its FileInfo.
func walkAs(path, abs string) (string, fs.FileInfo, error) {
	todo := splitPath(abs)
	cur := "/"
	links := 0
	fi, err := os.Lstat(cur)
	if err != nil {
		return "", nil, fmt.Errorf("checking %s: %w", path, err)
	}
	for len(todo) > 0 {
		// cur is a directory we look into: the rule applies to it.
		if err := checkOne(path, cur, fi, Dir, true); err != nil {
			return "", nil, err
		}
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			cur = filepath.Dir(cur)
			if fi, err = os.Lstat(cur); err != nil {
				return "", nil, fmt.Errorf("checking %s: %w", path, err)
			}
			continue
		}
		next := filepath.Join(cur, c)
		if fi, err = os.Lstat(next); err != nil {
			return "", nil, fmt.Errorf("checking %s: %w", path, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(todo) > 0 && !fi.IsDir() {
				return "", nil, fmt.Errorf("checking %s: %s is not a directory", path, next)
			}
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", nil, fmt.Errorf("checking %s: too many symbolic links", path)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", nil, fmt.Errorf("checking %s: %w", path, err)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(splitPath(target), todo...)
		if fi, err = os.Lstat(cur); err != nil {
			return "", nil, fmt.Errorf("checking %s: %w", path, err)
		}
	}
	return cur, fi, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func checkOne(path, real string, fi fs.FileInfo, kind Kind, parent bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	e := &Error{Path: path, Bad: real, Parent: parent, Uid: st.Uid, Mode: fi.Mode()}
	perm := fi.Mode().Perm()
	switch {
	case !trusted(st.Uid):
		owner := "root"
		if os.Geteuid() != 0 {
			owner = "root or you"
		}
		e.Problem = "is owned by " + OwnerName(st.Uid) + ", not " + owner
		e.Fix = "chown " + userName(os.Geteuid()) + " " + real
		if perm&0o022 != 0 {
			e.Fix += " && chmod go-w " + real
		}
	case perm&0o022 != 0 && !(fi.IsDir() && fi.Mode()&fs.ModeSticky != 0):
		// A sticky directory lets nobody else rename or delete an
		// entry it does not own, and the entries are checked too.
		e.Problem = "is writable by group or others"
		e.Fix = "chmod go-w " + real
	case parent:
		return nil
	case kind == Secret && perm&0o044 != 0:
		e.Problem = "is readable by group or others (a secret, like an SSH private key)"
		e.Fix = "chmod 600 " + real
	case kind == Program && (!fi.Mode().IsRegular() || perm&0o111 == 0):
		e.Problem = "is not an executable file"
		e.Fix = "chmod +x " + real
	case (kind == File || kind == Secret) && !fi.Mode().IsRegular():
		e.Problem = "is not a regular file"
		e.Fix = "point it at a regular file instead of " + real
	default:
		return nil
	}
	return e
}

// LookPath resolves a program name on PATH (as exec does) or takes an
// absolute path, and checks the program.
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	return Check(p, Program)
}

// IsRefusal reports whether err is a refusal by the rule (rather than, say,
// a missing file).
func IsRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
