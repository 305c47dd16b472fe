package trust

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// must fails the test on err: the setup of a test, not what it checks.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rootDir is a temp dir that passes the rule: private to root.
func rootDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	return d
}

func write(t *testing.T, path string, mode fs.FileMode) string {
	t.Helper()
	must(t, os.WriteFile(path, []byte("x"), mode))
	must(t, os.Chmod(path, mode))
	return path
}

// mkdir makes path with mode, set after the umask has had its say.
func mkdir(t *testing.T, path string, mode fs.FileMode) string {
	t.Helper()
	must(t, os.Mkdir(path, 0o755))
	must(t, os.Chmod(path, mode))
	return path
}

// inUserDir writes root's program name in d/dir, a directory u owns.
func inUserDir(t *testing.T, u testuser.User, d, dir, name string) (ud, file string) {
	t.Helper()
	ud = filepath.Join(d, dir)
	must(t, os.Mkdir(ud, 0o755))
	file = write(t, filepath.Join(ud, name), 0o755)
	u.Chown(t, ud)
	return ud, file
}

// danglingNar is d/cache with nar a link of root's to a directory not
// made yet in d/open, sticky and everyone's to write (as /tmp).
func danglingNar(t *testing.T, d string) (open, cache string) {
	t.Helper()
	open = mkdir(t, filepath.Join(d, "open"), fs.ModeSticky|0o777)
	cache = filepath.Join(d, "cache")
	must(t, os.Mkdir(cache, 0o755))
	must(t, os.Symlink(filepath.Join(open, "missing", "nar"), filepath.Join(cache, "nar")))
	return open, cache
}

func mustRefuse(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want a refusal containing %q", want)
	}
	if !IsRefusal(err) {
		t.Fatalf("error %v is not a refusal", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// Every way another user could steer what root reads or runs is refused,
// with the path, owner, mode and the fix in the message.
func TestCheckAdversarial(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)

	ok := write(t, filepath.Join(d, "ok.conf"), 0o644)
	if _, err := Check(ok, File); err != nil {
		t.Errorf("root's 0644 file in a root dir refused: %v", err)
	}

	owned := write(t, filepath.Join(d, "owned.conf"), 0o644)
	u.Chown(t, owned)
	mustRefuse(t, firstErr(Check(owned, File)), owned, "owned by "+u.Name, "mode 0644", "chown root "+owned)

	gw := write(t, filepath.Join(d, "gw.conf"), 0o664)
	mustRefuse(t, firstErr(Check(gw, File)), gw, "writable by group or others", "owner root (uid 0), mode 0664", "chmod go-w "+gw)

	// A directory above that the user owns, though the file is root's.
	ud := filepath.Join(d, "userdir")
	must(t, os.Mkdir(ud, 0o755))
	inUD := write(t, filepath.Join(ud, "hook.conf"), 0o600)
	u.Chown(t, ud)
	mustRefuse(t, firstErr(Check(inUD, File)), "its directory "+ud, "owned by "+u.Name)

	// A world-writable directory that is not sticky.
	ww := filepath.Join(d, "ww")
	must(t, os.Mkdir(ww, 0o777))
	must(t, os.Chmod(ww, 0o777))
	inWW := write(t, filepath.Join(ww, "cachix"), 0o755)
	mustRefuse(t, firstErr(Check(inWW, Program)), "its directory "+ww, "writable by group or others", "mode 0777")

	// Sticky and world-writable (like /tmp): fine for root's own entry,
	// not for the user's.
	st := filepath.Join(d, "sticky")
	must(t, os.Mkdir(st, 0o755))
	must(t, os.Chmod(st, os.ModeSticky|0o777))
	inSt := write(t, filepath.Join(st, "cachix"), 0o755)
	if _, err := Check(inSt, Program); err != nil {
		t.Errorf("root's program in a sticky dir refused: %v", err)
	}
	userSt := filepath.Join(st, "userown")
	must(t, os.Mkdir(userSt, 0o755))
	u.Chown(t, userSt)
	inUserSt := write(t, filepath.Join(userSt, "cachix"), 0o755)
	mustRefuse(t, firstErr(Check(inUserSt, Program)), "its directory "+userSt, "owned by "+u.Name)

	// A symlink to the user's program: the real path is named.
	link := filepath.Join(d, "cachix-link")
	must(t, os.Symlink(inUserSt, link))
	mustRefuse(t, firstErr(Check(link, Program)), link, userSt)

	// A root-owned symlink in a directory the user owns, pointing at a
	// good file: the user could point it elsewhere.
	linkInUD := filepath.Join(ud, "link")
	must(t, os.Symlink(ok, linkInUD))
	mustRefuse(t, firstErr(Check(linkInUD, File)), "its directory "+ud)

	// A good symlink to a good file passes, and the real path comes back.
	good := filepath.Join(d, "good-link")
	must(t, os.Symlink(ok, good))
	if real, err := Check(good, File); err != nil || real != ok {
		t.Errorf("Check(good link) = %q, %v; want %q", real, err, ok)
	}

	// Issue 18: a symlink in a directory others can write counts only
	// when root owns it; the user's own is refused (fs.protected_symlinks
	// may be 0), and the message names the link, its owner and the file
	// it points at. In a directory only root writes, the link's owner
	// cannot repoint it: it counts.
	userLink := filepath.Join(st, "user-link")
	must(t, os.Symlink(ok, userLink))
	u.Chown(t, userLink)
	mustRefuse(t, firstErr(Check(userLink, File)), userLink, "symbolic link owned by "+u.Name, "point the setting at the file itself ("+ok+")")
	if f, err := Open(userLink, File); err == nil || !IsRefusal(err) {
		t.Errorf("Open through the user's link in a sticky dir: %v", err)
		f.Close()
	}
	viaUserLink := userLink + "/../cachix" // not cleaned: through the link
	mustRefuse(t, firstErr(Check(viaUserLink, Program)), "the link "+userLink+" on its way")
	rootLink := filepath.Join(st, "root-link")
	must(t, os.Symlink(ok, rootLink))
	if real, err := Check(rootLink, File); err != nil || real != ok {
		t.Errorf("root's link in a sticky dir: %q, %v", real, err)
	}
	userLinkInRootDir := filepath.Join(d, "user-link")
	must(t, os.Symlink(ok, userLinkInRootDir))
	u.Chown(t, userLinkInRootDir)
	if _, err := Check(userLinkInRootDir, File); err != nil {
		t.Errorf("the user's link in a directory only root writes: %v", err)
	}

	// Secrets: readable by others is refused, 0600 passes.
	tok := write(t, filepath.Join(d, "token"), 0o644)
	mustRefuse(t, firstErr(Check(tok, Secret)), "readable by group or others", "chmod 600 "+tok)
	must(t, os.Chmod(tok, 0o600))
	if _, err := Check(tok, Secret); err != nil {
		t.Errorf("0600 token refused: %v", err)
	}

	// A program that is not executable.
	noexec := write(t, filepath.Join(d, "noexec"), 0o644)
	mustRefuse(t, firstErr(Check(noexec, Program)), "not an executable file")

	// Missing: not a refusal, a not-exist error.
	if _, err := Check(filepath.Join(d, "missing"), File); !errors.Is(err, fs.ErrNotExist) || IsRefusal(err) {
		t.Errorf("missing file: %v", err)
	}

	// CheckParents, for a queue dir that does not exist yet.
	if err := CheckParents(filepath.Join(ww, "queue")); !IsRefusal(err) {
		t.Errorf("CheckParents under a world-writable dir: %v", err)
	}
	if err := CheckParents(filepath.Join(d, "queue")); err != nil {
		t.Errorf("CheckParents under a root dir: %v", err)
	}
}

// Programs in the Nix store pass, though /nix/store is group-writable
// (sticky, root:nixbld 1775).
func TestCheckNixStore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, p := range []string{"/usr/bin/nix-store", "/usr/bin/nix"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if _, err := LookPath(p); err != nil {
			t.Errorf("LookPath(%s): %v", p, err)
		}
	}
	entries, _ := os.ReadDir("/nix/store")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join("/nix/store", e.Name())
		if _, err := Check(p, File); err != nil && IsRefusal(err) && !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("store path %s refused: %v", p, err)
		}
		break
	}
}

func firstErr(_ string, err error) error { return err }

// Open reads what it checked: a regular file, through links that count,
// relative paths and "..", without blocking on a FIFO; anything else is
// refused, and a missing file is fs.ErrNotExist.
func TestOpen(t *testing.T) {
	d := rootDir(t)
	sub := filepath.Join(d, "sub")
	must(t, os.Mkdir(sub, 0o755))
	f := write(t, filepath.Join(sub, "f.conf"), 0o644)
	must(t, os.Symlink("sub/../sub/f.conf", filepath.Join(d, "rel-link")))
	must(t, os.Symlink(sub, filepath.Join(d, "dir-link")))
	for _, p := range []string{f, filepath.Join(d, "rel-link"), filepath.Join(d, "dir-link", "f.conf"), d + "/dir-link/../sub/f.conf"} {
		fh, err := Open(p, File)
		if err != nil {
			t.Errorf("Open(%s): %v", p, err)
			continue
		}
		b := make([]byte, 4)
		n, _ := fh.Read(b)
		fh.Close()
		if string(b[:n]) != "x" {
			t.Errorf("Open(%s) read %q", p, b[:n])
		}
	}
	fifo := filepath.Join(d, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Open(fifo, File)
		done <- err
	}()
	select {
	case err := <-done:
		mustRefuse(t, err, "not a regular file")
	case <-time.After(eventually.Left(t)):
		t.Fatal("Open of a FIFO blocked")
	}
	mustRefuse(t, errOf(Open(sub, File)), "not a regular file")
	if _, err := Open(filepath.Join(d, "missing"), File); !errors.Is(err, fs.ErrNotExist) || IsRefusal(err) {
		t.Errorf("missing: %v", err)
	}
	loop := filepath.Join(d, "loop")
	must(t, os.Symlink("loop", loop))
	if _, err := Open(loop, File); err == nil || !strings.Contains(err.Error(), "too many symbolic links") {
		t.Errorf("a link to itself: %v", err)
	}
}

func errOf(f *os.File, err error) error {
	if f != nil {
		f.Close()
	}
	return err
}

// CheckParents checks the directory the kernel resolves: in
// "link/../queue" that is the one above link's target, which another user
// owns here, not the directory holding link.
func TestCheckParentsThroughLink(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	ud := filepath.Join(d, "userdir")
	sub := filepath.Join(ud, "sub")
	must(t, os.MkdirAll(sub, 0o755))
	u.Chown(t, ud)
	u.Chown(t, sub)
	must(t, os.Symlink(sub, filepath.Join(d, "link")))
	mustRefuse(t, CheckParents(d+"/link/../queue"), "its directory "+ud, "owned by "+u.Name)
	if err := CheckParents(d + "/queue/"); err != nil {
		t.Errorf("CheckParents with a trailing slash: %v", err)
	}
}

// A path right under / (queue.dir = /cfh-queue) has / as its only
// directory, which passes.
func TestCheckParentsOfTopLevel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: / is root's")
	}
	for _, p := range []string{"/cfh-queue", "/cfh-queue/"} {
		if err := CheckParents(p); err != nil {
			t.Errorf("CheckParents(%s): %v", p, err)
		}
	}
}

// The kernel runs a script's #! interpreter as the same user: one in a
// directory another user owns is refused as that directory would be for
// the script itself, and scripts naming each other stop.
func TestCheckInterpreter(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	ud, interp := inUserDir(t, u, d, "userdir", "sh")
	script := filepath.Join(d, "cachix")
	must(t, os.WriteFile(script, []byte("#! "+interp+" -e\necho hi\n"), 0o755))
	mustRefuse(t, firstErr(Check(script, Program)), script+" is a script run by "+interp, "its directory "+ud, "owned by "+u.Name)

	good := filepath.Join(d, "good")
	must(t, os.WriteFile(good, []byte("#!/bin/sh\necho hi\n"), 0o755))
	if real, err := Check(good, Program); err != nil || real != good {
		t.Errorf("a script for /bin/sh: %q, %v", real, err)
	}
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	must(t, os.WriteFile(a, []byte("#!"+b+"\n"), 0o755))
	must(t, os.WriteFile(b, []byte("#!"+a+"\n"), 0o755))
	if _, err := Check(a, Program); err == nil || !strings.Contains(err.Error(), "too many levels of interpreters") {
		t.Errorf("scripts naming each other: %v", err)
	}
}

// A script whose interpreter is missing exists: Check's error names the
// interpreter and does not wrap fs.ErrNotExist, which callers read as
// the program itself missing (doctor said nix.bin_dir "has no nix").
func TestCheckMissingInterpreter(t *testing.T) {
	d := rootDir(t)
	script := filepath.Join(d, "nix")
	missing := filepath.Join(d, "no-such-sh")
	must(t, os.WriteFile(script, []byte("#!"+missing+"\n"), 0o755))
	_, err := Check(script, Program)
	if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Check of a script run by a missing %s = %v, want an error naming it, not one of a missing file", missing, err)
	}
}

// The kernel maps and runs an ELF program's loader (PT_INTERP) as the
// same user, before the program: one in a directory another user owns is
// refused as the #! interpreter of a script is, and the real loader of a
// program of the system passes.
func TestCheckELFInterpreter(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	ud, loader := inUserDir(t, u, d, "userdir", "ld.so")
	prog := filepath.Join(d, "cachix")
	must(t, os.WriteFile(prog, elfWithInterp(t, loader), 0o755))
	mustRefuse(t, firstErr(Check(prog, Program)), prog+" is a program loaded by "+loader, "its directory "+ud, "owned by "+u.Name)

	missing := filepath.Join(d, "no-such-ld.so")
	must(t, os.WriteFile(prog, elfWithInterp(t, missing), 0o755))
	if _, err := Check(prog, Program); err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Check of a program loaded by a missing %s = %v, want an error naming it, not one of a missing file", missing, err)
	}

	good := write(t, filepath.Join(d, "ld.so"), 0o755)
	must(t, os.WriteFile(prog, elfWithInterp(t, good), 0o755))
	if real, err := Check(prog, Program); err != nil || real != prog {
		t.Errorf("a program loaded by root's loader: %q, %v", real, err)
	}
	if sh, err := Check("/bin/sh", Program); err != nil {
		t.Errorf("/bin/sh (%s): %v", sh, err)
	}
}

// elfWithInterp is the least ELF file the kernel reads a loader from: a
// header and one PT_INTERP naming interp.
func elfWithInterp(t *testing.T, interp string) []byte {
	t.Helper()
	const ehsize, phsize = 64, 56
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: 1}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	p := elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: ehsize + phsize,
		Filesz: uint64(len(interp) + 1), Memsz: uint64(len(interp) + 1), Align: 1}
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&b, binary.LittleEndian, p); err != nil {
		t.Fatal(err)
	}
	b.WriteString(interp + "\x00")
	return b.Bytes()
}

// The kernel reads an ELF program's header and program headers, nothing
// else: a program whose section headers lie past the end of the file (or
// whose EI_VERSION is not set) runs with its loader all the same, and
// that loader is checked as any other's. debug/elf refused such a file,
// and Check then passed it with its loader unchecked.
func TestCheckELFInterpreterUnreadSections(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	_, loader := inUserDir(t, u, d, "userdir", "ld.so")
	prog := filepath.Join(d, "cachix")
	for name, patch := range map[string]func([]byte){
		"section headers past the end": func(b []byte) {
			binary.LittleEndian.PutUint64(b[0x28:], 1<<40) // e_shoff
			binary.LittleEndian.PutUint16(b[0x3c:], 1)     // e_shnum
		},
		"no EI_VERSION": func(b []byte) { b[elf.EI_VERSION] = 0 },
	} {
		b := elfWithInterp(t, loader)
		patch(b)
		must(t, os.WriteFile(prog, b, 0o755))
		if _, err := Check(prog, Program); err == nil || !strings.Contains(err.Error(), prog+" is a program loaded by "+loader) {
			t.Errorf("%s: Check of a program loaded by %s = %v, want it refused for its loader", name, loader, err)
		}
	}
}

// The kernel looks a relative #! interpreter or PT_INTERP up from the
// working directory of the process at exec time, not the checker's: it
// was checked in the checker's (where root's own file of that name
// passed), so what it named when run was never checked. It is refused.
func TestCheckRelativeInterpreter(t *testing.T) {
	d := rootDir(t)
	write(t, filepath.Join(d, "sh"), 0o755)
	write(t, filepath.Join(d, "ld.so"), 0o755)
	t.Chdir(d)
	script := filepath.Join(d, "cachix")
	must(t, os.WriteFile(script, []byte("#!sh\necho hi\n"), 0o755))
	if _, err := Check(script, Program); err == nil || !strings.Contains(err.Error(), `"sh"`) || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("Check of a script run by a relative interpreter = %v, want a refusal naming it", err)
	}
	prog := filepath.Join(d, "nix")
	must(t, os.WriteFile(prog, elfWithInterp(t, "ld.so"), 0o755))
	if _, err := Check(prog, Program); err == nil || !strings.Contains(err.Error(), `"ld.so"`) || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("Check of a program loaded by a relative loader = %v, want a refusal naming it", err)
	}
}

// envCheckAsUser names a program for the test binary, run as another
// user, to Check and print the result of (TestCheckUnreadableProgram).
const envCheckAsUser = "TRUST_TEST_CHECK_AS_USER"

// The kernel runs a program its user may execute but not read (mode
// 0711) with its loader, and a script so with its interpreter: a user
// running Check could not read the program to find that loader, and
// passed it unchecked. It is refused instead.
func TestCheckUnreadableProgram(t *testing.T) {
	if p := os.Getenv(envCheckAsUser); p != "" {
		_, err := Check(p, Program)
		fmt.Printf("result: %v\n", err)
		return
	}
	u, other := testuser.New(t), testuser.New(t)
	// Straight under /tmp, not under TMPDIR: the test user must reach
	// the test binary, and a TMPDIR nested in another test's 0700
	// directories (TestOfflineTestPackages) it cannot.
	d, err := os.MkdirTemp("/tmp", "cfh-trust-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	must(t, os.Chmod(d, 0o755))
	_, loader := inUserDir(t, other, d, "otherdir", "ld.so")
	prog := filepath.Join(d, "cachix")
	must(t, os.WriteFile(prog, elfWithInterp(t, loader), 0o711))
	// The test binary, where the user can run it.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(d, "trust.test")
	must(t, os.WriteFile(bin, self, 0o755))
	cmd := exec.Command(bin, "-test.run=^TestCheckUnreadableProgram$")
	cmd.Env = []string{envCheckAsUser + "=" + prog}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the check as %s: %v\n%s", u.Name, err, out)
	}
	if !strings.Contains(string(out), "result: "+prog+" cannot be read") {
		t.Errorf("Check of a program %s cannot read, loaded by %s (another user's), as %s:\n%s\nwant it refused as unreadable", prog, loader, u.Name, out)
	}
}

// A directory root writes into and makes when missing: a missing one
// counts by the real directory it would be made in, after links, so a
// link of root's to a missing directory in /tmp is refused.
func TestCheckWriteDirThroughLink(t *testing.T) {
	d := rootDir(t)
	open := mkdir(t, filepath.Join(d, "open"), fs.ModeSticky|0o777)
	link := filepath.Join(d, "cache")
	must(t, os.Symlink(filepath.Join(open, "missing"), link))
	mustRefuse(t, CheckWriteDir(link), open, "writable by group or others", "mode 1777")
	for _, p := range []string{filepath.Join(d, "missing", "cache"), "/cfh-test-nowhere/cache"} {
		if err := CheckWriteDir(p, "nar"); err != nil {
			t.Errorf("%s: a missing directory root would make in its own: %v", p, err)
		}
	}
}

// A path that climbs out of a directory not made yet (missing/..) is
// made by Nix as the kernel resolves it, each missing directory made
// first: /d/missing/../open/x is /d/open/x. It counts by where it leads,
// so one leading into a directory others can write is refused, written
// so or through a link of root's.
func TestCheckWriteDirDotDotBelowMissing(t *testing.T) {
	d := rootDir(t)
	open := mkdir(t, filepath.Join(d, "open"), fs.ModeSticky|0o777)
	link := filepath.Join(d, "cache")
	must(t, os.Symlink("missing/../open/x", link))
	for _, p := range []string{filepath.Join(d, "missing") + "/../open/x", d + "/missing/a/../../open/x", link} {
		mustRefuse(t, CheckWriteDir(p, "nar"), open, "writable by group or others")
	}
	// Where it leads is made in a directory of root's alone: accepted.
	if err := CheckWriteDir(filepath.Join(d, "missing")+"/../new/x", "nar"); err != nil {
		t.Errorf("a path made in root's own directory: %v", err)
	}
}

// A subdirectory Nix writes in (nar/) that is a link of root's to a
// directory not made yet counts by where that would be made, as the
// directory itself does: one into a directory others can write let them
// make it, theirs, and have root write through what they put there. It
// was skipped as missing, as if Nix made it in the checked directory.
func TestCheckWriteDirDanglingSubdirLink(t *testing.T) {
	d := rootDir(t)
	open, cache := danglingNar(t, d)
	mustRefuse(t, CheckWriteDir(cache, "nar"), open, "writable by group or others")
	// A link to a directory to be made in root's own: accepted.
	must(t, os.Remove(filepath.Join(cache, "nar")))
	must(t, os.Symlink(filepath.Join(d, "missing", "nar"), filepath.Join(cache, "nar")))
	if err := CheckWriteDir(cache, "nar"); err != nil {
		t.Errorf("a link to a directory to be made in root's own: %v", err)
	}
}

// A directory root writes in that another user owned, or could write,
// may hold what they put there: a link for nar/ to where they choose, a
// link at a name Nix will open. The fix said only chown or chmod, which
// leaves those: following it, nar -> a directory of root's elsewhere,
// the other user's link, was accepted and written through. The fix now
// makes the directory anew, and a link of another user's for a
// subdirectory Nix writes in is refused.
func TestCheckWriteDirAdviceKeepsNoLinks(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	elsewhere := mkdir(t, filepath.Join(d, "elsewhere"), 0o755)
	for _, mode := range []fs.FileMode{0o755, 0o777} {
		cache := mkdir(t, filepath.Join(d, fmt.Sprintf("cache%o", mode)), mode)
		if mode == 0o755 {
			u.Chown(t, cache)
		}
		nar := filepath.Join(cache, "nar")
		must(t, os.Symlink(elsewhere, nar))
		u.Chown(t, nar)
		err := CheckWriteDir(cache, "nar")
		mustRefuse(t, err, cache, "mv "+cache+" ")
		// What the fix said before: chown and chmod alone.
		must(t, os.Chown(cache, 0, 0))
		must(t, os.Chmod(cache, 0o755))
		mustRefuse(t, CheckWriteDir(cache, "nar"), nar, OwnerName(uint32(u.Uid)))
	}
}

// A directory not made yet, reached through a link (a dangling cache/nar,
// refused since 21b2f83), was to be made with `mkdir -p cache/nar`, which
// fails on the link ("File exists"). The fix names where it leads, and
// carried out, the directory is accepted.
func TestCheckWriteDirMissingFixFollowsLink(t *testing.T) {
	d := rootDir(t)
	// As /tmp: refused as the directory the missing one is made in,
	// accepted above one of root's made in it.
	_, cache := danglingNar(t, d)
	var e *Error
	if err := CheckWriteDir(cache, "nar"); !errors.As(err, &e) || !strings.HasPrefix(e.Fix, "mkdir -p ") {
		t.Fatalf("CheckWriteDir = %v, want a refusal whose fix is mkdir -p", err)
	}
	dir, _, _ := strings.Cut(strings.TrimPrefix(e.Fix, "mkdir -p "), " ")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("the fix %q: %v", e.Fix, err)
	}
	if err := CheckWriteDir(cache, "nar"); err != nil {
		t.Errorf("after the fix %q: %v", e.Fix, err)
	}
}

// A directory above the cache that another user owned or could write
// may hold their link on the way (/srv/cache -> where they chose): the
// fix said chown or chmod it, which keeps the link, and then the link,
// in a directory only root writes, was followed, so root wrote where
// they chose. A link of another user's anywhere on the way to a
// directory root writes into is refused, whatever the directory
// holding it.
func TestCheckWriteDirOthersLinkOnTheWay(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	elsewhere := mkdir(t, filepath.Join(d, "elsewhere"), 0o755)
	srv := mkdir(t, filepath.Join(d, "srv"), 0o777)
	cache := filepath.Join(srv, "cache")
	must(t, os.Symlink(elsewhere, cache))
	u.Chown(t, cache)
	mustRefuse(t, CheckWriteDir(cache, "nar"), srv, "chmod go-w "+srv)
	// What the fix said: chmod go-w.
	must(t, os.Chmod(srv, 0o755))
	mustRefuse(t, CheckWriteDir(cache, "nar"), cache, "symbolic link owned by "+u.Name, "rm "+cache)
	// Deeper on the way, and on the way to one not made yet.
	mustRefuse(t, CheckWriteDir(filepath.Join(cache, "sub"), "nar"), cache, "symbolic link owned by "+u.Name)
	mustRefuse(t, CheckWriteDir(filepath.Join(cache, "missing", "sub"), "nar"), cache, "symbolic link owned by "+u.Name)
	// Root's own link there is followed.
	must(t, os.Remove(cache))
	must(t, os.Symlink(elsewhere, cache))
	if err := CheckWriteDir(cache, "nar"); err != nil {
		t.Errorf("root's link to root's directory: %v", err)
	}
}

// CheckParents serves paths root creates or appends by a fixed name (the
// queue directory, log.file, metrics.file): another user's link on the
// way, left in a directory they could once write (/var/log/cfh before
// /var/log was made root's alone), is theirs to have chosen, and a chown
// or chmod of the directory holding it keeps it. It is refused wherever
// it sits; root's own link is followed.
func TestCheckParentsOthersLinkOnTheWay(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	elsewhere := mkdir(t, filepath.Join(d, "elsewhere"), 0o755)
	logdir := filepath.Join(d, "log")
	must(t, os.Mkdir(logdir, 0o755))
	link := filepath.Join(logdir, "cfh")
	must(t, os.Symlink(elsewhere, link))
	u.Chown(t, link)
	mustRefuse(t, CheckParents(filepath.Join(link, "worker.log")), link, "symbolic link owned by "+u.Name, "rm "+link)
	mustRefuse(t, CheckParents(filepath.Join(link, "sub", "queue")), link, "symbolic link owned by "+u.Name)
	must(t, os.Remove(link))
	must(t, os.Symlink(elsewhere, link))
	if err := CheckParents(filepath.Join(link, "worker.log")); err != nil {
		t.Errorf("root's link to root's directory: %v", err)
	}
}

// / itself, where a walk cannot end (a file:/// store, local?root=/, the
// directory of unix:///socket), is checked as any directory: root's and
// writable by nobody else, it passes. It was refused with "/ is not a
// file", which says nothing of what is wrong.
func TestCheckWriteDirOfRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: / is root's")
	}
	for _, p := range []string{"/", "//", "/."} {
		if err := CheckWriteDir(p); err != nil {
			t.Errorf("CheckWriteDir(%s): %v", p, err)
		}
	}
	// A subdirectory in it is checked as in any other: one not there
	// counts by /.
	if err := CheckWriteDir("/", "cfh-no-such-dir"); err != nil {
		t.Errorf("CheckWriteDir(/, missing): %v", err)
	}
}

// A log root appends to by its name, in a sticky directory others can
// write (log.file = /tmp/cfh.log), may be another user's hard link to a
// file of root's (fs.protected_hardlinks = 0), which is root's and
// writable by nobody else: root appended its log to that file. A file
// with another name is refused; the file with one passes.
func TestCheckOpenedHardLink(t *testing.T) {
	d := rootDir(t)
	secret := write(t, filepath.Join(d, "shadow"), 0o600)
	log := filepath.Join(d, "worker.log")
	if err := os.Link(secret, log); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustRefuse(t, CheckOpened(log, f, File), log, "2 names", "rm "+log)
	own := write(t, filepath.Join(d, "own.log"), 0o600)
	g, err := os.OpenFile(own, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := CheckOpened(own, g, File); err != nil {
		t.Errorf("a log of one name: %v", err)
	}
}

// A directory shared by design (sticky, everyone's to write: /tmp) was to
// be moved aside and made anew, as one another user owned: advice that
// breaks the machine when it is /tmp. A directory of root's made for the
// cache is the fix.
func TestCheckWriteDirSharedDirAdvice(t *testing.T) {
	d := rootDir(t)
	shared := mkdir(t, filepath.Join(d, "shared"), fs.ModeSticky|0o777)
	var e *Error
	if err := CheckWriteDir(shared); !errors.As(err, &e) {
		t.Fatalf("CheckWriteDir(%s), sticky and everyone's to write = %v, want a refusal", shared, err)
	}
	if strings.Contains(e.Fix, "mv ") || !strings.Contains(e.Fix, "directory of root's") {
		t.Errorf("the fix for a shared directory is %q, want a directory of root's instead, not to move it", e.Fix)
	}
}

// A subdirectory Nix writes in (a file:// cache's nar/), made sticky and
// everyone's to write by mistake, was refused with the advice for a
// directory shared by design (/tmp): to leave it and use a directory of
// root's instead, though it is the cache's own, to be made anew as any
// other refused directory (what others put in it outlasts a chmod).
func TestCheckWriteDirSharedSubdirAdvice(t *testing.T) {
	d := rootDir(t)
	cache := filepath.Join(d, "cache")
	must(t, os.Mkdir(cache, 0o755))
	nar := mkdir(t, filepath.Join(cache, "nar"), fs.ModeSticky|0o777)
	mustRefuse(t, CheckWriteDir(cache, "nar"), nar, "mv "+nar+" "+nar+".untrusted")
	// Named as the directory itself, it is the top the user chose.
	mustRefuse(t, CheckWriteDir(nar), "directory of root's")
}

// A fix in words came after "run:", as if it were a command: "run: have
// the daemon bind its socket ...", "run: use a directory of root's
// instead". Only a command is to be run.
func TestErrorRunsOnlyCommands(t *testing.T) {
	for fix, lead := range map[string]string{
		"chmod go-w /srv/c":                                                  "; run: chmod",
		"mv /srv/c /srv/c.untrusted && mkdir /srv/c":                         "; run: mv",
		"have the daemon bind its socket in a directory only root can write": "; have the daemon",
		"use a directory of root's instead, made for it":                     "; use a directory",
	} {
		e := &Error{Path: "/srv/c", Bad: "/srv/c", Problem: "is writable by group or others", Mode: 0o777, Fix: fix}
		if msg := e.Error(); !strings.Contains(msg, lead) {
			t.Errorf("fix %q: %s\nwant %q", fix, msg, lead)
		}
	}
}

// ReadLink judges and reads one link: root's in root's directory is read
// as written, another user's is refused naming them, one in a directory
// others can write is refused, and a file that is not a link is refused.
func TestReadLink(t *testing.T) {
	u := testuser.New(t)
	d := rootDir(t)
	ours := filepath.Join(d, "ours")
	must(t, os.Symlink("../target", ours))
	if got, err := ReadLink(ours); err != nil || got != "../target" {
		t.Errorf("root's link: ReadLink = %q, %v; want ../target", got, err)
	}
	theirs := filepath.Join(d, "theirs")
	must(t, os.Symlink("/run/socket", theirs))
	u.Chown(t, theirs)
	mustRefuse(t, linkErr(theirs), theirs, "symbolic link owned by "+u.Name)
	open := mkdir(t, filepath.Join(d, "open"), 0o777)
	inOpen := filepath.Join(open, "link")
	must(t, os.Symlink("/run/socket", inOpen))
	mustRefuse(t, linkErr(inOpen), open)
	file := filepath.Join(d, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	if _, err := ReadLink(file); err == nil || !strings.Contains(err.Error(), "not a symbolic link") {
		t.Errorf("a file: ReadLink = %v, want it refused as no link", err)
	}
}

func linkErr(path string) error {
	_, err := ReadLink(path)
	return err
}
