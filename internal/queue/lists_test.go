package queue

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// An unread list's error is cut short in its record: before a UTF-8
// character, never inside one, which status and wait would show as bytes
// the error does not hold.
func TestUnreadListErrorCutOnCharacter(t *testing.T) {
	q := openQ(t)
	list := mkPath("cachix-packages-cut")
	// 999 bytes, then a 3-byte character across the 1000-byte cut.
	why := strings.Repeat("a", 999) + "€" + strings.Repeat("b", 100)
	if err := q.AddUnreadList(list, why, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	u, err := q.ReadUnreadList(list.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(u.LastError) || !strings.HasSuffix(u.LastError, "a…") || len(u.LastError) != 999+len("…") {
		t.Fatalf("AddUnreadList kept %q…%q", u.LastError[:10], u.LastError[990:])
	}
	u.LastError = strings.Repeat("c", 998) + "€"
	if err := q.UpdateUnreadList(u); err != nil {
		t.Fatal(err)
	}
	if u, err = q.ReadUnreadList(list.Hash); err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(u.LastError) || !strings.HasSuffix(u.LastError, "c…") {
		t.Fatalf("UpdateUnreadList kept …%q", u.LastError[990:])
	}
}

// Lists the hook did not read, past its bounds, which any user may
// build by the dozen, fill lists/ only to MaxSkippedLists: one that
// could not be read is still recorded past them, not said lost.
func TestSkippedListsLeaveRoomForUnreadable(t *testing.T) {
	q := openQ(t)
	if err := os.MkdirAll(q.path(listsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range MaxSkippedLists - 1 {
		if err := os.WriteFile(q.path(listsDir, fmt.Sprintf("x%d", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.AddSkippedList(mkPath("cachix-packages-last"), "not read", 0, time.Now()); err != nil {
		t.Fatalf("AddSkippedList below its bound: %v", err)
	}
	if err := q.AddSkippedList(mkPath("cachix-packages-past"), "not read", 0, time.Now()); err == nil {
		t.Errorf("AddSkippedList recorded a list past %d in lists/", MaxSkippedLists)
	}
	if err := q.AddUnreadList(mkPath("cachix-packages-eio"), "input/output error", 0, time.Now()); err != nil {
		t.Errorf("AddUnreadList past the skipped lists' bound: %v", err)
	}
}
