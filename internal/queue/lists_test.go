package queue

import (
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
