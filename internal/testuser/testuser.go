// Package testuser creates a real unprivileged user for the adversarial
// tests (run as root), and removes it when the test ends. Each user has a
// name of its own (cfhtest-<random>), so parallel test runs do not meet.
package testuser

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
)

// User is the created user.
type User struct {
	Name     string
	Uid, Gid int
}

// New creates a user without a home directory, or skips the test when not
// running as root. CFH_TEST_REQUIRE_ROOT=1 makes that a failure, and so
// does CI (CI=true, or CFH_TEST_REQUIRE_NIX=1 as .ci/run sets; it never
// sets CFH_TEST_REQUIRE_ROOT), where a skip would hide every adversarial
// test at once.
func New(t testing.TB) User {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CFH_TEST_REQUIRE_ROOT") == "1" || os.Getenv("CI") == "true" || os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
			t.Fatal("not root, and CI requires the tests that need root (CI=true, CFH_TEST_REQUIRE_NIX=1 or CFH_TEST_REQUIRE_ROOT=1)")
		}
		t.Skip("needs root to create a user")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "cfhtest-" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/bin/false", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return User{Name: name, Uid: uid, Gid: gid}
}

// Chown gives path to the user.
func (u User) Chown(t testing.TB, path string) {
	t.Helper()
	if err := os.Lchown(path, u.Uid, u.Gid); err != nil {
		t.Fatal(err)
	}
}
