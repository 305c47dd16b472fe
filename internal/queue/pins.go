package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Pins are requests to pin a root in a Cachix cache (`push --pin`), kept
// as durably as entries: one small file each in <dir>/pins, written by
// push (fsynced, linked, the directory fsynced) and only removed by the
// worker once `cachix pin` succeeded. A pin waits until its root's entry
// for the same target has left entries/ (pushed, or found pushed before,
// so its closure is in the cache: cachix uploads whole closures), and is
// dropped when that entry was dropped. They are few (one per root and
// target), so they are read whole.
const pinsDir = "pins"

// pinAsksDir holds, by pin file name, the pins push --pin asked for again
// (see askPinAgain): one file each, holding the ask (PinAsk), written
// only by push and removed only by the worker as it starts the pin's
// call, so that no rewrite of the pin's file by either loses an ask.
const pinAsksDir = "pinasks"

// Pin is one root to pin in one target's cache.
type Pin struct {
	Target string `json:"target"`
	Path   string `json:"path"`
	// Name is the pin's name, {host} and {target} already replaced.
	Name        string    `json:"name"`
	Keep        Keep      `json:"keep,omitzero"`
	Queued      time.Time `json:"queued"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`

	key string
}

// Keep says how long Cachix keeps a pin's older revisions, as cachix
// pin's options do: at most one field is set (--keep-days,
// --keep-revisions and --keep-forever exclude each other); none leaves
// it to Cachix.
type Keep struct {
	Days      int  `json:"days,omitempty"`
	Revisions int  `json:"revisions,omitempty"`
	Forever   bool `json:"forever,omitempty"`
}

// Args are cachix pin's options for k.
func (k Keep) Args() []string {
	switch {
	case k.Forever:
		return []string{"--keep-forever"}
	case k.Days > 0:
		return []string{"--keep-days", strconv.Itoa(k.Days)}
	case k.Revisions > 0:
		return []string{"--keep-revisions", strconv.Itoa(k.Revisions)}
	}
	return nil
}

// String renders k as its option ("--keep-revisions 3"), "" for none.
func (k Keep) String() string {
	switch a := k.Args(); len(a) {
	case 1:
		return a[0]
	case 2:
		return a[0] + " " + a[1]
	}
	return ""
}

// Key is the pin's file name.
func (p *Pin) Key() string { return p.key }

// EntryKey names the push entry of the pin's root for its target.
func (p *Pin) EntryKey() (string, error) {
	sp, err := storepath.Parse(storepath.StoreDir(), p.Path)
	if err != nil {
		return "", err
	}
	return Key(p.Target, sp), nil
}

// ValidPinName reports whether s can be a pin's name once {host} and
// {target} are replaced: 1 to 200 letters, digits and ._+-@=:, not
// starting with -, so that it reads the same in cachix's argv, the logs
// and Cachix's web page. A loop, not a regexp: `{0,199}` compiles to a
// 200-step program at every start of the binary, the hook's too (2 ms).
func ValidPinName(s string) bool {
	if len(s) == 0 || len(s) > 200 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._+@=:-", c) >= 0) {
			return false
		}
	}
	return true
}

// PinKey names a pin: its root's hash and a digest of its target and
// name, so that the same pin asked twice is one request.
func PinKey(target string, root storepath.Path, name string) string {
	sum := sha256.Sum256([]byte(target + "\x00" + name))
	return root.Hash + "." + hex.EncodeToString(sum[:8])
}

// AddPins queues pins durably; a pin already queued is asked for again:
// one backed off after a failed call is made due now, as retry makes it
// (its cause may be fixed), its attempts and last error kept. It returns
// how many were new.
func (q *Queue) AddPins(pins []Pin, now time.Time) (int, error) {
	if len(pins) == 0 {
		return 0, nil
	}
	dir := q.path(pinsDir)
	if err := mkdirPrivate(dir, false); err != nil {
		return 0, err
	}
	added := 0
	var bad []error    // pins asked for again that could not be: the others still go
	var stale []string // asks to take once this push's pins are durable
	for i := range pins {
		p := &pins[i]
		root, err := storepath.Parse(storepath.StoreDir(), p.Path)
		if err != nil {
			return added, fmt.Errorf("pinning %s: %w", p.Path, err)
		}
		if !ValidPinName(p.Name) {
			return added, fmt.Errorf("pinning %s: %q is not a pin name", p.Path, p.Name)
		}
		p.Queued = now.UTC()
		name := PinKey(p.Target, root, p.Name)
		data, err := json.Marshal(p)
		if err != nil {
			return added, err
		}
		// An ask is for a queued pin: one left with none (a worker
		// killed between removing a pin and its ask) would give this
		// pin its keep. DropPin queues a pin anew with its ask's own.
		// One whose pin a drop left aside in tmp/ keeps that pin (see
		// relinkPinAside): it becomes this push's ask before this pin is
		// linked, so that a worker reading the new pin never takes the
		// old keep, and is taken only once the pin is queued, or a
		// failed write here would lose the pin an earlier push said it
		// "will pin".
		if _, err := os.Lstat(q.path(pinsDir, name)); errors.Is(err, fs.ErrNotExist) {
			if a, ok := q.PinAsked(name); ok && !a.Queued.Equal(p.Queued) {
				if !q.PinAside(name) {
					q.TakePinAsk(name)
				} else if err := q.writePinAsk(name, PinAsk{Queued: p.Queued, Keep: p.Keep}); err != nil {
					return added, fmt.Errorf("queueing the pin of %s: %w", p.Path, err)
				} else {
					stale = append(stale, name)
					if q.pinAskRewritten != nil {
						q.pinAskRewritten(name)
					}
				}
			}
		}
		asked := false
		for relink := 0; ; relink++ {
			for try := 0; ; try++ {
				tmp, err2 := q.writeTmp("pin", append(data, '\n'), true)
				if err2 != nil {
					return added, err2
				}
				err = os.Link(tmp, q.path(pinsDir, name))
				os.Remove(tmp)
				if err == nil && q.pinLinked != nil {
					q.pinLinked(name)
				}
				if !errors.Is(err, fs.ErrNotExist) || try == tmpRewrites {
					break // see tmpRewrites
				}
			}
			if !errors.Is(err, fs.ErrExist) {
				break
			}
			if q.pinExists != nil {
				q.pinExists(name)
			}
			err = q.askPinAgain(name, PinAsk{Queued: p.Queued, Keep: p.Keep})
			if errors.Is(err, errPinGone) && relink < pinRelinks {
				// The worker removed the old pin (made, or dropped
				// with its root, which this push queued again): this
				// push's is queued anew.
				continue
			}
			if err != nil {
				bad = append(bad, fmt.Errorf("queueing the pin of %s again: %w", p.Path, err))
			}
			asked = true
			break
		}
		if asked {
			// The pin aside was linked back meanwhile (the worker's
			// relinkPinAside): this push's ask is that pin's keep now,
			// not one to take.
			if len(stale) > 0 && stale[len(stale)-1] == name {
				stale = stale[:len(stale)-1]
			}
			continue
		}
		if err != nil {
			return added, fmt.Errorf("queueing the pin of %s: %w", p.Path, err)
		}
		added++
	}
	if added == 0 {
		return 0, errors.Join(bad...)
	}
	if err := syncDir(dir); err != nil {
		return added, errors.Join(append(bad, err)...)
	}
	for _, name := range stale {
		// Queued anew: this push's ask goes, unless another push asked
		// again meanwhile (its own Queued).
		if a, ok := q.PinAsked(name); ok && a.Queued.Equal(now.UTC()) {
			q.TakePinAsk(name)
		}
	}
	return added, errors.Join(bad...)
}

// askPinAgain asks again for the queued pin name: it leaves a marker the
// pin's file is read with (ReadPin), which the worker, that alone
// rewrites the pin's file, takes as its call starts. The new Queued tells
// a worker that knows the pin that it was asked for again: a due pin on
// disk alone may be one whose update the worker could not write, which
// it must not try in a loop. The ask's keep is the pin's from then on:
// push says "will pin" with it.
func (q *Queue) askPinAgain(name string, ask PinAsk) error {
	if _, err := q.ReadPin(name); errors.Is(err, fs.ErrNotExist) {
		return errPinGone
	} else if err != nil {
		// Unreadable, the worker never makes it: this push's pin is
		// not queued.
		return err
	}
	if err := q.writePinAsk(name, ask); err != nil {
		return err
	}
	// Removed as the ask was written, the ask with it maybe: queued anew.
	if _, err := os.Lstat(q.path(pinsDir, name)); errors.Is(err, fs.ErrNotExist) {
		return errPinGone
	}
	return nil
}

// writePinAsk writes ask as the pin name's, durably: before push says
// "will pin", as a link into entries/ is.
func (q *Queue) writePinAsk(name string, ask PinAsk) error {
	if err := mkdirPrivate(q.path(pinAsksDir), false); err != nil {
		return err
	}
	data, err := json.Marshal(ask)
	if err != nil {
		return err
	}
	tmp, err := q.writeTmp("pinask", append(data, '\n'), true)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, q.path(pinAsksDir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("asking for pin %s again: %w", name, err)
	}
	return syncDir(q.path(pinAsksDir))
}

// errPinGone is askPinAgain's error for a pin removed before it was asked
// for again: AddPins then queues it anew.
var errPinGone = errors.New("the queued pin was removed")

// pinRelinks bounds how many times AddPins queues a pin anew whose old
// file the worker removed as it was asked for again: it removes each at
// most once, after a pin call or a drop.
const pinRelinks = 3

// PinAsk is push --pin's last ask for a queued pin: when, and the keep
// it asked for.
type PinAsk struct {
	Queued time.Time `json:"queued"`
	Keep   Keep      `json:"keep,omitzero"`
	// bare is an ask of the older form, its time alone: push then
	// asked for the pin again with the pin's keep, not for none.
	bare bool
}

// New reports whether the ask is one p does not hold yet.
func (a PinAsk) New(p *Pin) bool { return !a.Queued.Equal(p.Queued) }

// KeepFor is the keep the ask asks p to be pinned with.
func (a PinAsk) KeepFor(p *Pin) Keep {
	if a.bare {
		return p.Keep
	}
	return a.Keep
}

// Apply makes p the pin the ask asked for: its Queued and keep.
func (a PinAsk) Apply(p *Pin) { p.Queued, p.Keep = a.Queued, a.KeepFor(p) }

// PinAsked returns the last ask for the pin name, if there was one since
// the worker took the last (TakePinAsk).
func (q *Queue) PinAsked(name string) (PinAsk, bool) {
	a, ok, _ := q.ReadPinAsk(name)
	return a, ok
}

// ReadPinAsk is PinAsked, with the error of an ask that could not be
// read for a reason of the moment (EMFILE, EIO): there may be one. What
// is not an ask (a link, garbage) is none.
func (q *Queue) ReadPinAsk(name string) (PinAsk, bool, error) {
	data, err := safeopen.ReadFile(q.path(pinAsksDir, name), safeopen.Options{NoFollow: true, MaxSize: 256})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, safeopen.ErrSymlink) || errors.Is(err, safeopen.ErrNotRegular) || errors.Is(err, safeopen.ErrTooLarge) {
			return PinAsk{}, false, nil
		}
		// open refuses a socket (ENXIO) before its kind can be checked.
		if fi, lerr := os.Lstat(q.path(pinAsksDir, name)); lerr == nil && !fi.Mode().IsRegular() {
			return PinAsk{}, false, nil
		}
		return PinAsk{}, false, fmt.Errorf("reading the ask for pin %s: %w", name, err)
	}
	var a PinAsk
	if json.Unmarshal(data, &a) != nil || a.Queued.IsZero() {
		// An ask written before it held its keep: its time alone,
		// which asks for the pin again with its own keep.
		a = PinAsk{bare: true}
		if json.Unmarshal(data, &a.Queued) != nil {
			return PinAsk{}, false, nil
		}
	}
	return a, true, nil
}

// PinAskNames lists the pins asked for again (by file name) since the
// worker took their last ask: one listing, where asks are rare and
// failing pins may be many.
func (q *Queue) PinAskNames() ([]string, error) {
	return q.dirNames(pinAsksDir)
}

// TakePinAsk removes the ask for the pin name, as its call starts: an ask
// made after it is one the call may not have seen.
func (q *Queue) TakePinAsk(name string) error {
	if err := os.Remove(q.path(pinAsksDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the ask for pin %s: %w", name, err)
	}
	return nil
}

// PinNames lists the pins' file names.
func (q *Queue) PinNames() ([]string, error) {
	return q.dirNames(pinsDir)
}

// ReadPin reads one pin; a file that is not one (or does not match its
// name) is an error wrapping ErrCorrupt. An error of the moment (EMFILE,
// EIO) is not, as for an entry (readEntry): the pin is read again later.
func (q *Queue) ReadPin(name string) (*Pin, error) {
	p, err := readPinFile(q.path(pinsDir, name), name)
	if err != nil {
		return nil, err
	}
	// Asked for again since the worker wrote it: due now, a failed
	// call's back-off over, as retry makes it. The keep is the ask's
	// either way (a due pin's Queued is left for the worker's drop to
	// tell the ask from its own look: see DropPin).
	if asked, ok := q.PinAsked(name); ok && asked.New(p) {
		p.Keep = asked.KeepFor(p)
		if !p.NextAttempt.IsZero() {
			p.NextAttempt = time.Time{}
			asked.Apply(p)
		}
	}
	return p, nil
}

// readPinFile reads the pin name from file, as it is on disk.
func readPinFile(file, name string) (*Pin, error) {
	data, err := safeopen.ReadFile(file, safeopen.Options{NoFollow: true, MaxSize: maxEntrySize})
	if err != nil {
		if errors.Is(err, safeopen.ErrSymlink) || errors.Is(err, safeopen.ErrNotRegular) || errors.Is(err, safeopen.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, file, err)
		}
		// open refuses a socket (ENXIO) before its kind can be checked.
		if !errors.Is(err, fs.ErrNotExist) {
			if fi, lerr := os.Lstat(file); lerr == nil && !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("%w: %s is not a regular file (%v)", ErrCorrupt, file, err)
			}
		}
		return nil, fmt.Errorf("reading pin %s: %w", file, err)
	}
	p := &Pin{key: name}
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("%w: parsing %s: %v", ErrCorrupt, file, err)
	}
	root, err := storepath.Parse(storepath.StoreDir(), p.Path)
	if err != nil || p.Target == "" || PinKey(p.Target, root, p.Name) != name {
		return nil, fmt.Errorf("%w: %s: pin does not match its name (target %q, path %q, name %q)", ErrCorrupt, file, p.Target, p.Path, p.Name)
	}
	if !ValidPinName(p.Name) {
		// What push refuses (a name cachix, the logs and wait's
		// reading of the history would not read as it is).
		return nil, fmt.Errorf("%w: %s: %q is not a pin name (1 to 200 of A-Z a-z 0-9 . _ + @ = : -, not starting with -)", ErrCorrupt, file, p.Name)
	}
	return p, nil
}

// ListPins reads every pin; unreadable ones are reported beside them.
func (q *Queue) ListPins() ([]*Pin, []error, error) {
	names, err := q.PinNames()
	if err != nil {
		return nil, nil, err
	}
	var pins []*Pin
	var bad []error
	for _, n := range names {
		p, err := q.ReadPin(n)
		switch {
		case err == nil:
			pins = append(pins, p)
		case errors.Is(err, fs.ErrNotExist):
		default:
			bad = append(bad, err)
		}
	}
	return pins, bad, nil
}

// UpdatePin rewrites a pin's retry state, its content fsynced before the
// rename, as Update does.
func (q *Queue) UpdatePin(p *Pin) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp, err := q.writeTmp(p.key, append(data, '\n'), true)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, q.path(pinsDir, p.key)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("updating pin: %w", err)
	}
	return nil
}

// DropPin deletes a pin given up on, as RemovePin does, unless push --pin
// asked for it again meanwhile: an ask other than the one p holds, found
// once the file is out of pins/, came after the worker's look, its push
// maybe having queued the root again, and the pin is kept with its ask
// (requeued), to be decided again. An ask made after the removal finds
// no pin, and AddPins queues the pin anew itself. The file is moved
// aside in tmp/ and linked back, not written anew, which a full disk
// would refuse, losing the pin push said it "will pin".
func (q *Queue) DropPin(p *Pin) (requeued bool, err error) {
	aside := q.path(tmpDir, pinAside+p.key)
	moved := true
	if err := os.Rename(q.path(pinsDir, p.key), aside); err != nil {
		// ENOENT is also tmp/ gone: a pin still there is not dropped.
		if _, lerr := os.Lstat(q.path(pinsDir, p.key)); !errors.Is(err, fs.ErrNotExist) || !errors.Is(lerr, fs.ErrNotExist) {
			return false, fmt.Errorf("removing pin: %w", err)
		}
		moved = false
	}
	if q.pinMovedAside != nil {
		q.pinMovedAside(p.key)
	}
	// The file aside goes only once the pin is back in pins/, durably,
	// or is not to be kept: left in tmp/, CleanTmp (or the worker,
	// RelinkPinsAside) links it back, as after a SIGKILL here.
	ask, ok, err := q.ReadPinAsk(p.key)
	if err != nil {
		// Maybe asked for again: kept, and dropped at a later look.
		if moved && q.linkPinBack(aside, p.key) == nil {
			os.Remove(aside)
		}
		return false, err
	}
	if ok && ask.New(p) {
		// The ask stays, as for any pin asked for again: its call
		// takes it. A pin there already was queued anew by that push.
		if moved {
			err := q.linkPinBack(aside, p.key)
			if err == nil {
				os.Remove(aside)
				return true, nil
			}
			if !errors.Is(err, errPinNotLinked) {
				return true, err // linked, not synced: aside kept
			}
		}
		if _, err := q.AddPins([]Pin{{Target: p.Target, Path: p.Path, Name: p.Name, Keep: ask.KeepFor(p)}}, ask.Queued); err != nil {
			return false, err
		}
		os.Remove(aside)
		return true, nil
	}
	q.TakePinAsk(p.key)
	os.Remove(aside)
	return false, nil
}

// errPinNotLinked is linkPinBack's error when the pin could not be linked
// back into pins/, as opposed to linked but not synced.
var errPinNotLinked = errors.New("pin not linked back")

// linkPinBack links the pin moved aside into pins/ again, durably: pins/
// synced before the file aside may go, as nothing orders the link after
// the move out of pins/. A pin there already is one, synced all the
// same: it may be this link of an earlier try whose sync failed, or
// push's, not synced yet. A failed link wraps errPinNotLinked.
func (q *Queue) linkPinBack(aside, key string) error {
	err := os.Link(aside, q.path(pinsDir, key))
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %w", errPinNotLinked, err)
	}
	return syncDir(q.path(pinsDir))
}

// pinAside begins the name in tmp/ of a pin DropPin moved aside; one
// left there (the worker killed before the link back) is linked back by
// CleanTmp when it was asked for again.
const pinAside = "pin-dropped."

// PinAside reports whether the file of the pin name is aside in tmp/:
// DropPin's, to be linked back when it was asked for again (by CleanTmp,
// should the worker be killed first), or removed.
func (q *Queue) PinAside(name string) bool {
	_, err := os.Lstat(q.path(tmpDir, pinAside+name))
	return err == nil
}

// RelinkPinsAside links back into pins/ the pins DropPin left aside in
// tmp/ asked for again, as CleanTmp does, for a worker that keeps
// running: it reports how many are still aside, to be linked back later.
// When tmp/ cannot be listed, the asks name those that may need it (a
// pin not asked for is not linked back); an error says that neither
// could be listed, and that some may be aside, unknown.
func (q *Queue) RelinkPinsAside() (left int, err error) {
	names, err := q.dirNames(tmpDir)
	if err == nil {
		for _, n := range names {
			if key, ok := strings.CutPrefix(n, pinAside); ok && !q.relinkPinAside(key) {
				left++
			}
		}
		return left, nil
	}
	keys, aerr := q.PinAskNames()
	if aerr != nil {
		return 0, errors.Join(err, aerr)
	}
	for _, k := range keys {
		_, lerr := os.Lstat(q.path(tmpDir, pinAside+k))
		switch {
		case errors.Is(lerr, fs.ErrNotExist) || errors.Is(lerr, syscall.ENOTDIR):
			// Not aside: tmp/ gone or not a directory, no drop
			// moved it there.
		case lerr != nil || !q.relinkPinAside(k):
			left++ // maybe aside, or not linked back yet
		}
	}
	return left, nil
}

// relinkPinAside links the pin key back from tmp/ when it was asked for
// again, or maybe was (an ask unreadable now): kept, to be decided again,
// else push said "will pin" of a pin gone. It reports false while such a
// pin cannot be linked back (it stays aside); one not asked for is left
// for CleanTmp to remove once old.
func (q *Queue) relinkPinAside(key string) bool {
	ask, asked, err := q.ReadPinAsk(key)
	if !asked && err == nil {
		return true
	}
	aside := q.path(tmpDir, pinAside+key)
	err = q.linkPinBack(aside, key)
	if errors.Is(err, errPinNotLinked) && asked {
		// pins/ gone, say: queued anew with its ask, as DropPin does
		// (AddPins makes pins/ again), or it stays aside for good.
		if p, rerr := readPinFile(aside, key); rerr == nil {
			if _, aerr := q.AddPins([]Pin{{Target: p.Target, Path: p.Path, Name: p.Name, Keep: ask.KeepFor(p)}}, ask.Queued); aerr == nil {
				err = nil
			}
		}
	}
	if err != nil {
		return false
	}
	os.Remove(aside)
	return true
}

// PinsAsideAsked reads the pins a drop left aside in tmp/ that were asked
// for again: the worker links them back (relinkPinAside), so they are
// queued as those in pins/ are. Unreadable ones are reported beside them.
func (q *Queue) PinsAsideAsked() ([]*Pin, []error, error) {
	names, err := q.dirNames(tmpDir)
	if err != nil {
		return nil, nil, err
	}
	var pins []*Pin
	var bad []error
	for _, n := range names {
		key, ok := strings.CutPrefix(n, pinAside)
		if !ok {
			continue
		}
		ask, asked, err := q.ReadPinAsk(key)
		if err == nil && !asked {
			continue // not linked back: CleanTmp removes it
		}
		p, rerr := readPinFile(q.path(tmpDir, n), key)
		switch {
		case errors.Is(rerr, fs.ErrNotExist):
		case rerr != nil:
			bad = append(bad, rerr)
		case err != nil:
			bad = append(bad, err)
		default:
			p.Keep = ask.KeepFor(p)
			pins = append(pins, p)
		}
	}
	return pins, bad, nil
}

// ForgetPinAside removes a pin PinsAsideAsked returned: its ask first,
// which alone has it linked back, then its file.
func (q *Queue) ForgetPinAside(p *Pin) error {
	if err := q.TakePinAsk(p.key); err != nil {
		return err
	}
	if err := os.Remove(q.path(tmpDir, pinAside+p.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing pin: %w", err)
	}
	return nil
}

// RemovePin deletes a pin that was made, or given up on.
func (q *Queue) RemovePin(p *Pin) error {
	if err := os.Remove(q.path(pinsDir, p.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing pin: %w", err)
	}
	// Its ask, if any, after it: one left (a SIGKILL between) is taken
	// by the AddPins that queues the pin again.
	q.TakePinAsk(p.key)
	return nil
}
