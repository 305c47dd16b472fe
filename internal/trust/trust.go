// Package trust decides whether a file, program or directory may be used
// by the running user: the one rule for everything the hook and the worker
// read or run (config, token file, cachix and its cachix.dhall, Nix's
// programs, queue dir).
//
// The rule is OpenSSH's StrictModes: the path must be owned by root or by
// the running user and writable by nobody else, and so must every
// directory above it up to /. A sticky directory that others can write
// (/tmp, or /nix/store, which is root:nixbld 1775) is accepted, because
// nobody else can rename or delete an entry they do not own in it, and
// every entry below it is checked in turn; a symlink in it counts only
// when root or the running user owns it (another user's is theirs to
// repoint, and fs.protected_symlinks may be 0). Programs in the Nix store
// pass: root owns them.
//
// What is checked is what is used: the path is walked from / one
// component at a time on descriptors, a file is read from the descriptor
// that was checked (Open), and a program is run from its real path, every
// directory of which passed the rule (Check), so nobody else can change
// what it names.
//
// Running as root this keeps any other user from steering what root runs
// or reads; running as a user, from steering that user's worker, which
// holds their token.
package trust

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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
	// Socket is a Unix socket the caller connects to (a unix:// store's
	// daemon): its owner is who bound it, who listens. Others may write
	// it: that is how they connect.
	Socket
)

// Error is a refusal. It names the path that failed (the checked path or a
// directory above it), its owner and mode, and the command that fixes it.
type Error struct {
	Path    string      // the path as given
	Bad     string      // the real path that failed: Path resolved, or a directory above it
	Parent  bool        // Bad is a directory above Path
	Link    bool        // Bad is a symlink on the way that is not followed
	Uid     uint32      // Bad's owner
	Gid     uint32      // Bad's group (CheckWriteDir's refusals only)
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
	case e.Link && e.Bad != absPath(e.Path):
		it = "the link " + e.Bad + " on its way"
	case e.Bad != absPath(e.Path):
		subject = e.Path + " (really " + e.Bad + ")"
	}
	if e.Link {
		return fmt.Sprintf("refusing %s: running as %s, and %s %s; %s", subject, who, it, e.Problem, e.Fix)
	}
	mode := e.Mode.Perm()
	if e.Mode&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return fmt.Sprintf("refusing %s: running as %s, and %s %s (owner %s, mode %04o); %s%s",
		subject, who, it, e.Problem, OwnerName(e.Uid), mode, runLead(e.Fix), e.Fix)
}

// runLead is "run: " for a fix that is a command to run (chmod go-w DIR),
// none for one in words ("have the daemon bind its socket ..."), which
// "run:" made read as a command.
func runLead(fix string) string {
	for _, c := range []string{"chmod ", "chown ", "chgrp ", "rm ", "mv ", "mkdir "} {
		if strings.HasPrefix(fix, c) {
			return "run: "
		}
	}
	return ""
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

// Check applies the rule to path, used as kind, and returns its real path
// (every symlink resolved), from which a program is to be run: every
// directory on it passed the rule, so nobody else can change what it
// names. A path that does not exist is an error wrapping fs.ErrNotExist.
func Check(path string, kind Kind) (string, error) {
	return check(path, kind, 0)
}

// maxInterpreters is how deeply scripts may name scripts as their
// interpreters, as the kernel's limit.
const maxInterpreters = 4

func check(path string, kind Kind, depth int) (string, error) {
	w, err := walkPath(path)
	if err != nil {
		return "", err
	}
	defer w.close()
	if err := checkOne(path, w.real, w.st.Uid, fileMode(w.st.Mode), kind, false); err != nil {
		return "", err
	}
	// The kernel runs a script's interpreter too, as the same user, and
	// an ELF program's loader (PT_INTERP) before the program itself:
	// the rule applies to them as to the program.
	if kind == Program {
		interp, script, err := interpreter(w)
		if err != nil {
			// The kernel runs what it names all the same (it
			// needs no read permission): unchecked, refused.
			return "", fmt.Errorf("%s cannot be read (%w), so what the kernel runs before it (a #! interpreter or an ELF loader) cannot be checked; make it readable: chmod a+r %s", path, err, w.real)
		}
		if interp != "" {
			if depth >= maxInterpreters {
				return "", fmt.Errorf("checking %s: too many levels of interpreters", path)
			}
			how := "a script run by"
			if !script {
				how = "a program loaded by"
			}
			// The kernel looks a relative one up from the working
			// directory at exec time, which is not the one checked.
			if !filepath.IsAbs(interp) {
				return "", fmt.Errorf("%s is %s %q, which is not an absolute path: the kernel would look it up in the working directory of whoever runs it; name it by its absolute path", path, how, interp)
			}
			if _, err := check(interp, Program, depth+1); err != nil {
				// path exists: an error wrapping fs.ErrNotExist
				// would say it does not (doctor: "has no nix").
				if errors.Is(err, fs.ErrNotExist) {
					return "", fmt.Errorf("%s is %s %s, which does not exist", path, how, interp)
				}
				return "", fmt.Errorf("%s is %s %s: %w", path, how, interp, err)
			}
		}
	}
	return w.real, nil
}

// interpreter returns the program on the #! line of the regular file w
// ended on (script true), or the loader an ELF file names (PT_INTERP),
// or "" when there is none, or an error when the file cannot be read.
func interpreter(w *walked) (string, bool, error) {
	if w.st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", false, nil
	}
	fd, err := unix.Openat(w.dir, w.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 256) // what the kernel reads of a #! line
	n, err := unix.Read(fd, buf)
	if err != nil {
		return "", false, err
	}
	if bytes.HasPrefix(buf[:n], []byte(elf.ELFMAG)) {
		return elfInterpreter(fd), false, nil
	}
	line, ok := bytes.CutPrefix(buf[:n], []byte("#!"))
	if !ok {
		return "", false, nil
	}
	line, _, _ = bytes.Cut(line, []byte("\n"))
	f := bytes.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(f) == 0 {
		return "", false, nil
	}
	return string(f[0]), true, nil
}

// elfInterpreter returns the PT_INTERP of the ELF file open as fd, as the
// kernel reads it (the first one, up to its NUL), or "" when it has none.
// Only what the kernel reads is read, the header and the program headers,
// in the machine's byte order: debug/elf also wants the section headers
// and EI_VERSION, which the kernel ignores, and a program it refused for
// them (section headers past the end of the file) ran its loader unchecked.
func elfInterpreter(fd int) string {
	r := preader(fd)
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil {
		return ""
	}
	bo := binary.NativeEndian
	var phoff int64
	var phentsize, phnum int
	is32 := elf.Class(ident[elf.EI_CLASS]) == elf.ELFCLASS32
	if is32 {
		var h elf.Header32
		if binary.Read(io.NewSectionReader(r, 0, 1<<20), bo, &h) != nil {
			return ""
		}
		phoff, phentsize, phnum = int64(h.Phoff), int(h.Phentsize), int(h.Phnum)
	} else {
		var h elf.Header64
		if binary.Read(io.NewSectionReader(r, 0, 1<<20), bo, &h) != nil {
			return ""
		}
		phoff, phentsize, phnum = int64(h.Phoff), int(h.Phentsize), int(h.Phnum)
	}
	// The kernel's own bound on the program headers.
	if phoff < 0 || phentsize == 0 || phentsize*phnum > 1<<16 {
		return ""
	}
	for i := range phnum {
		sr := io.NewSectionReader(r, phoff+int64(i*phentsize), int64(phentsize))
		var typ uint32
		var off, filesz uint64
		if is32 {
			var p elf.Prog32
			if binary.Read(sr, bo, &p) != nil {
				return ""
			}
			typ, off, filesz = p.Type, uint64(p.Off), uint64(p.Filesz)
		} else {
			var p elf.Prog64
			if binary.Read(sr, bo, &p) != nil {
				return ""
			}
			typ, off, filesz = p.Type, p.Off, p.Filesz
		}
		if elf.ProgType(typ) != elf.PT_INTERP {
			continue
		}
		b := make([]byte, min(filesz, unix.PathMax))
		n, _ := r.ReadAt(b, int64(off))
		name, _, _ := bytes.Cut(b[:n], []byte{0})
		return string(name)
	}
	return ""
}

// preader reads a descriptor at offsets, leaving it open.
type preader int

func (fd preader) ReadAt(p []byte, off int64) (int, error) {
	n, err := unix.Pread(int(fd), p, off)
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Open opens path for reading, as File or Secret, and returns the file
// after checking the rule on what was opened: walked from / one component
// at a time on descriptors (see walk), the file itself opened relative to
// its checked directory without following a link, without blocking (a
// FIFO), and checked with fstat. So what is read is what was checked:
// nobody can swap it in between, by a rename or a symlink repointed in a
// loop. The file is a regular file.
func Open(path string, kind Kind) (*os.File, error) {
	w, err := walkPath(path)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := checkOne(path, w.real, w.st.Uid, fileMode(w.st.Mode), kind, false); err != nil {
		return nil, err
	}
	// The descriptor walk holds is O_PATH (opening it could not have
	// touched a device); open the checked entry for reading, and make
	// sure it is the one checked.
	fd, err := unix.Openat(w.dir, w.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != w.st.Dev || st.Ino != w.st.Ino {
		unix.Close(fd)
		return nil, fmt.Errorf("opening %s: it changed while it was opened", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// CheckOpened applies the rule to a file the caller opened itself (a log
// it appends to, made with O_NOFOLLOW in directories CheckParents passed),
// as kind, on the file's own fstat: owned by root or the running user,
// writable by nobody else, and of one name: in a sticky directory others
// can write (/tmp), another user may have put a hard link to a file of
// root's at that name (fs.protected_hardlinks = 0), which passes the rest.
func CheckOpened(path string, f *os.File, kind Kind) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	real := absPath(path)
	if err := checkOne(path, real, st.Uid, fileMode(st.Mode), kind, false); err != nil {
		return err
	}
	if st.Nlink > 1 {
		return &Error{Path: path, Bad: real, Uid: st.Uid, Mode: fileMode(st.Mode),
			Problem: fmt.Sprintf("has %d names (hard links), another of which may be a file that must not be written", st.Nlink),
			Fix:     "rm " + real + " (it is made anew), or choose a file in a directory only root can write"}
	}
	return nil
}

// CheckParents applies the rule to the directories leading to path (not
// to path itself, which may not exist yet), for a path the caller checks
// by other means, such as the queue directory, which must be the running
// user's own. Root creates or appends such a path by its name (the queue
// directory, log.file, metrics.file), so another user's link on the way
// is refused wherever it sits, as for CheckWriteDir (see walk's writes).
func CheckParents(path string) error {
	fd, _, _, _, err := checkedDir(path)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// checkedDir is CheckParents' check, which returns an O_PATH descriptor
// of the directory it passed and that directory's real path, and path's
// absolute form and last name.
func checkedDir(path string) (fd int, abs, name, real string, err error) {
	abs, err = absolute(path)
	if err != nil {
		return -1, "", "", "", fmt.Errorf("checking %s: %w", path, err)
	}
	// The directory the kernel will create path in, not cleaned (see
	// absolute): "link/../queue" is made above link's target.
	dir := strings.TrimRight(abs, "/")
	if i := strings.LastIndex(dir, "/"); i >= 0 {
		dir, name = dir[:i], dir[i+1:]
	}
	fd, real, err = openDir(path, dir, true)
	return fd, abs, name, real, err
}

// CheckedDir walks to the directory path as CheckParents walks to the
// directory it checks (each directory passed checked, another user's
// link refused wherever it sits) and returns its real path and what it
// is, both from that one walk: for a caller that compares it with
// another directory, or goes above it, and must do so with the directory
// that was checked, not one found by name after. With self, path itself
// is checked as CheckParents checks the directory of a name in it;
// without, only the way to it.
func CheckedDir(path string, self bool) (string, fs.FileInfo, error) {
	abs, err := absolute(path)
	if err != nil {
		return "", nil, fmt.Errorf("checking %s: %w", path, err)
	}
	fd, real, err := openDir(path, strings.TrimRight(abs, "/"), self)
	if err != nil {
		return "", nil, err
	}
	// The file owns fd (O_PATH: fstat works on it) and closes it.
	f := os.NewFile(uintptr(fd), real)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return real, fi, nil
}

// openDir walks to dir, absolute and with no trailing slash ("" is /,
// where a walk cannot end), for path's check, and returns an O_PATH
// descriptor of it and its real path, once it is a directory and, with
// self, passes the rule itself.
func openDir(path, dir string, self bool) (int, string, error) {
	var st unix.Stat_t
	fd, real := -1, "/"
	if dir == "" {
		var err error
		if fd, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return -1, "", fmt.Errorf("checking %s: %w", path, err)
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, "", fmt.Errorf("checking %s: %w", path, err)
		}
	} else {
		w, err := walk(path, dir, true)
		if err != nil {
			return -1, "", err
		}
		unix.Close(w.dir)
		fd, real, st = w.fd, w.real, w.st
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return -1, "", fmt.Errorf("checking %s: %s is not a directory", path, real)
	}
	if self {
		if err := checkOne(path, real, st.Uid, fileMode(st.Mode), Dir, true); err != nil {
			unix.Close(fd)
			return -1, "", err
		}
	}
	return fd, real, nil
}

// ReadLink returns the target of the symbolic link path, as written, when
// root or the running user owns it and CheckParents passes for it. The
// owner is checked, and the target read, on one descriptor of the link,
// opened in the directory that was checked: a link put in its place
// meanwhile is neither judged by the other's owner nor read.
func ReadLink(path string) (string, error) {
	dfd, abs, name, _, err := checkedDir(path)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	if name == "" || name == "." || name == ".." || strings.HasSuffix(abs, "/") {
		return "", fmt.Errorf("checking %s: not a symbolic link", path)
	}
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("checking %s: %w", path, &fs.PathError{Op: "open", Path: abs, Err: err})
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("checking %s: %w", path, &fs.PathError{Op: "stat", Path: abs, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", fmt.Errorf("checking %s: %s is not a symbolic link", path, abs)
	}
	if !trusted(st.Uid) {
		return "", &Error{Path: path, Bad: abs, Link: true, Uid: st.Uid, Mode: fileMode(st.Mode),
			Problem: "is a symbolic link owned by " + OwnerName(st.Uid) + ", so its owner chose where it leads",
			Fix:     "remove it (rm " + abs + ") and put a link of your own there, or choose a path without it"}
	}
	target, err := readLink(fd)
	if err != nil {
		return "", fmt.Errorf("checking %s: %w", path, &fs.PathError{Op: "readlink", Path: abs, Err: err})
	}
	return target, nil
}

// fileMode converts a stat mode to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	return mode
}

func checkOne(path, real string, uid uint32, mode fs.FileMode, kind Kind, parent bool) error {
	e := &Error{Path: path, Bad: real, Parent: parent, Uid: uid, Mode: mode}
	perm := mode.Perm()
	switch {
	case !trusted(uid):
		owner := "root"
		if os.Geteuid() != 0 {
			owner = "root or you"
		}
		e.Problem = "is owned by " + OwnerName(uid) + ", not " + owner
		e.Fix = "chown " + userName(os.Geteuid()) + " " + real
		if perm&0o022 != 0 {
			e.Fix += " && chmod go-w " + real
		}
		if kind == Socket && !parent {
			// Its owner bound it, and listens on it: a chown
			// would leave them there.
			e.Fix = "rm " + real + " and point the store at a socket its daemon, running as " + userName(os.Geteuid()) + ", binds"
		}
	case perm&0o022 != 0 && !(mode.IsDir() && mode&fs.ModeSticky != 0) && !(kind == Socket && !parent):
		// A sticky directory lets nobody else rename or delete an
		// entry it does not own, and the entries are checked too.
		e.Problem = "is writable by group or others"
		e.Fix = "chmod go-w " + real
	case parent:
		return nil
	case kind == Secret && perm&0o044 != 0:
		e.Problem = "is readable by group or others (a secret, like an SSH private key)"
		e.Fix = "chmod 600 " + real
	case kind == Program && (!mode.IsRegular() || perm&0o111 == 0):
		e.Problem = "is not an executable file"
		e.Fix = "chmod +x " + real
	case kind == Socket && mode&fs.ModeSocket == 0:
		e.Problem = "is not a socket"
		e.Fix = "point it at the daemon's socket instead of " + real
	case (kind == File || kind == Secret) && !mode.IsRegular():
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

// CheckWriteDir applies the rule to a directory that a program the caller
// runs writes into and makes when it is missing (a file:// binary cache
// that nix copy fills, as root, through temporary files it opens by name,
// following links): the directory itself, and each of subdirs in it that
// exists, must be owned by root or the running user and writable by
// nobody else, sticky or not; the directories above them pass the rule
// for any directory (a sticky /tmp above a directory of root's is fine:
// nobody else can rename what is in it). One that does not exist yet
// counts by the nearest directory above it that does, whose entries
// nobody else may then make, sticky or not. Another user who could write
// in any of them could make root create or overwrite a file of their
// choosing.
func CheckWriteDir(path string, subdirs ...string) error {
	return checkWriteDir(path, false, subdirs)
}

// CheckWriteSubdir is CheckWriteDir for a directory Nix makes in one the
// user chose (a local store's nix/var/nix): sticky and everyone's to
// write, it is no directory shared by design (/tmp) to leave as it is,
// but one to make anew as any other refused.
func CheckWriteSubdir(path string) error {
	return checkWriteDir(path, true, nil)
}

// checkWriteDir is CheckWriteDir; sub says path is a directory in one the
// user chose (see writeDir).
func checkWriteDir(path string, sub bool, subdirs []string) error {
	if abs, err := absolute(path); err == nil && len(splitPath(abs)) == 0 {
		// / itself, where a walk cannot end: checked as any other.
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("checking %s: %w", path, err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("checking %s: %w", path, err)
		}
		if e := writeDir(path, "/", &st, false, sub); e != nil {
			return e
		}
		return checkSubdirs(path, fd, "/", subdirs)
	}
	w, err := walkWrite(path)
	var pe *fs.PathError
	if errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe) && pe.Op == "open" {
		// pe.Path is the real path of the first missing component: it
		// is made in the directory above, which must then be one only
		// root or the running user can add to.
		above := filepath.Dir(pe.Path)
		var st unix.Stat_t
		if above == "/" {
			// Where a walk cannot end: / is all there is to check.
			if err := unix.Stat("/", &st); err != nil {
				return fmt.Errorf("checking %s: %w", path, err)
			}
		} else {
			aw, err := walkWrite(above)
			if err != nil {
				return err
			}
			aw.close()
			st, above = aw.st, aw.real
		}
		var oe *openError
		isOpen := errors.As(err, &oe)
		if e := writeDir(path, above, &st, true, sub); e != nil {
			// Where the links on the way lead: mkdir -p of path itself
			// fails on a link to a directory not made yet.
			made := path
			if isOpen && !slices.Contains(oe.rest, "..") {
				made = filepath.Join(append([]string{pe.Path}, oe.rest...)...)
			}
			e.Fix = "mkdir -p " + made + " (as the user that writes there), or choose a directory outside " + above
			return e
		}
		// What is left may climb out of the directories to be made
		// (missing/../open): made as the kernel resolves it, each
		// missing one first, it leads where it reads once cleaned,
		// which is checked in turn.
		if isOpen && slices.Contains(oe.rest, "..") {
			to := filepath.Join(pe.Path, strings.Join(oe.rest, "/"))
			if err := checkWriteDir(to, sub, subdirs); err != nil {
				return fmt.Errorf("checking %s, which leads to %s: %w", path, to, err)
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer w.close()
	if w.st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("checking %s: %s is not a directory", path, w.real)
	}
	if e := writeDir(path, w.real, &w.st, false, sub); e != nil {
		return e
	}
	return checkSubdirs(path, w.fd, w.real, subdirs)
}

// checkSubdirs is CheckWriteDir's rule for the subdirectories of path,
// the directory open as fd, whose real path is real.
func checkSubdirs(path string, fd int, real string, subdirs []string) error {
	for _, sub := range subdirs {
		p := strings.TrimRight(path, "/") + "/" + sub
		// Another user's link in it can only be one they put there
		// when it was theirs to write: where it leads is their choice.
		var st unix.Stat_t
		if err := unix.Fstatat(fd, sub, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK && !trusted(st.Uid) {
			link := filepath.Join(real, sub)
			return &Error{Path: p, Bad: link, Link: true, Uid: st.Uid, Mode: fileMode(st.Mode),
				Problem: "is a symbolic link owned by " + OwnerName(st.Uid) + ", so its owner chose where root writes",
				Fix:     "remove it (rm " + link + "; Nix makes the directory), and check what else is in " + real}
		}
		// As path itself: one missing counts by where it would be
		// made, which a link of root's to a directory not made yet
		// puts outside path. Nix's own, not one shared by design.
		if err := checkWriteDir(p, true, nil); err != nil {
			return err
		}
	}
	return nil
}

// writeDir is CheckWriteDir's rule for one directory: a sticky one others
// can write is refused too, since what is written or made in it is by a
// name known beforehand. sub says it is a directory in one the user chose
// (a cache's nar/), which is not shared by design, as /tmp is.
func writeDir(path, real string, st *unix.Stat_t, parent, sub bool) *Error {
	mode := fileMode(st.Mode)
	if err := checkOne(path, real, st.Uid, mode&^fs.ModeSticky, Dir, parent); err != nil {
		e := err.(*Error)
		e.Mode, e.Gid = mode, st.Gid
		switch {
		case !parent && !sub && mode&fs.ModeSticky != 0 && mode&0o002 != 0:
			// Shared by design (/tmp): to move it would break the
			// machine, and a new one would be shared again.
			e.Fix = "use a directory of root's instead, made for it (mkdir -m 0755 /var/cache/NAME); " + real + " is everyone's to write"
		case !parent:
			// What another user put in it while it was theirs to
			// write (a link at a name Nix opens) outlasts a chown or
			// chmod: a new directory holds nothing of theirs.
			e.Fix = "mv " + real + " " + real + ".untrusted && mkdir -m 0755 " + real +
				" (a chown or chmod would keep what another user could put in it, such as links root would write through)"
		}
		return e
	}
	return nil
}
