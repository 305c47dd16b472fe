package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
)

// TestCheckDirAgreesWithOpen: doctor relies on CheckDir refusing exactly
// what Open refuses, so each setup is tried with both.
func TestCheckDirAgreesWithOpen(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the queue dir
		ok    bool
	}{
		{"missing", func(t *testing.T, base string) string { return filepath.Join(base, "q") }, true},
		{"missing parent", func(t *testing.T, base string) string { return filepath.Join(base, "a", "q") }, true},
		{"private", func(t *testing.T, base string) string { return mkdirMode(t, base, "q", 0o700) }, true},
		{"0755", func(t *testing.T, base string) string { return mkdirMode(t, base, "q", 0o755) }, false},
		{"symlink", func(t *testing.T, base string) string {
			mkdirMode(t, base, "real", 0o700)
			link := filepath.Join(base, "q")
			if err := os.Symlink("real", link); err != nil {
				t.Fatal(err)
			}
			return link
		}, false},
		{"a file", func(t *testing.T, base string) string {
			p := filepath.Join(base, "q")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
		{"entries a symlink", func(t *testing.T, base string) string {
			q := mkdirMode(t, base, "q", 0o700)
			mkdirMode(t, base, "elsewhere", 0o700)
			if err := os.Symlink("../elsewhere", filepath.Join(q, entriesDir)); err != nil {
				t.Fatal(err)
			}
			return q
		}, false},
		{"parent writable by others", func(t *testing.T, base string) string {
			return filepath.Join(mkdirMode(t, base, "shared", 0o777), "q")
		}, false},
		// Like /tmp: CheckParents passes a sticky directory, but Open
		// will not make a missing parent below one others can write.
		{"missing parent below a sticky shared directory", func(t *testing.T, base string) string {
			return filepath.Join(mkdirMode(t, base, "tmp", 0o777|os.ModeSticky), "a", "q")
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Two copies of the same setup: Open creates what is missing.
			dirA := c.setup(t, t.TempDir())
			dirB := c.setup(t, t.TempDir())
			checkErr := CheckDir(dirA)
			_, openErr := Open(dirB)
			if (checkErr == nil) != c.ok || (openErr == nil) != c.ok {
				t.Fatalf("CheckDir: %v; Open: %v; want accepted=%v by both", checkErr, openErr, c.ok)
			}
			if _, err := os.Lstat(filepath.Join(dirA, entriesDir)); err == nil && c.ok {
				t.Errorf("CheckDir created %s/%s: it must only look", dirA, entriesDir)
			}
		})
	}
}

func mkdirMode(t *testing.T, base, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(base, name)
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	// Mkdir's mode passes through the umask.
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// pins/ and pinasks/ are made and checked by push --pin (AddPins), as
// bulk/ is by Add: CheckDir left them out, and doctor passed a queue
// whose pins/ (a symbolic link, here) push --pin then refused.
func TestCheckDirRefusesWhatAddPinsRefuses(t *testing.T) {
	root := mkPath("system-1")
	for _, sub := range []string{pinsDir, pinAsksDir} {
		q := openQ(t)
		if sub == pinAsksDir {
			// An ask is made for a pin queued already.
			if _, err := q.AddPins([]Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		elsewhere := mkdirMode(t, t.TempDir(), "elsewhere", 0o700)
		if err := os.Symlink(elsewhere, filepath.Join(q.Dir, sub)); err != nil {
			t.Fatal(err)
		}
		if _, err := q.AddPins([]Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err == nil {
			t.Fatalf("AddPins with %s/ a symbolic link: no error", sub)
		}
		if err := CheckDir(q.Dir); err == nil {
			t.Errorf("CheckDir passed %s/ a symbolic link, which push --pin refuses", sub)
		}
	}
}

// pushed/, the records of what was pushed (package pushed), must be the
// worker's own and private, or the worker refuses to record in it:
// nothing doctor runs looked at it, and passed a queue whose pushed/ was
// open to others, or a link, while the worker refused it. CheckDir, the
// hook's rule, still passes it: paths are only pushed again.
func TestDiagnoseRecords(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, q string){
		"mode 0755": func(t *testing.T, q string) { mkdirMode(t, q, pushed.Dir, 0o755) },
		"mode 0777": func(t *testing.T, q string) { mkdirMode(t, q, pushed.Dir, 0o777) },
		"a symlink": func(t *testing.T, q string) {
			mkdirMode(t, q, "elsewhere", 0o700)
			if err := os.Symlink("elsewhere", filepath.Join(q, pushed.Dir)); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			q := mkdirMode(t, t.TempDir(), "q", 0o700)
			setup(t, q)
			if _, err := pushed.OpenWrite(q, "k", 0); err == nil {
				t.Fatalf("the worker's pushed.OpenWrite accepts it")
			}
			records := filepath.Join(q, pushed.Dir)
			p := DiagnoseRecords(q)
			if p == nil || !strings.Contains(p.Msg, records) || !strings.Contains(p.Fix, "rm -rf "+records) {
				t.Fatalf("DiagnoseRecords = %+v, want %s refused, with the fix to remove it", p, records)
			}
			if err := CheckDir(q); err != nil {
				t.Errorf("CheckDir = %v: the hook queues all the same", err)
			}
		})
	}
	q := mkdirMode(t, t.TempDir(), "q", 0o700)
	if p := DiagnoseRecords(q); p != nil {
		t.Errorf("no pushed/ yet: %+v", p)
	}
	mkdirMode(t, q, pushed.Dir, 0o700)
	if p := DiagnoseRecords(q); p != nil {
		t.Errorf("a private pushed/: %+v", p)
	}
}
