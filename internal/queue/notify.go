package queue

import (
	"path/filepath"
	"slices"

	"github.com/fsnotify/fsnotify"
)

// Notify returns a channel that receives when an entry, a pin or a list
// to read again comes or goes (inotify on ChangeDirs), and a func that
// stops it. A directory made later (bulk/, pins/ and lists/ come with
// their first file) is watched from its creation, seen on the queue
// directory; nothing else that happens there (worker.log, state.json)
// wakes the channel. Where inotify is missing, the channel stays quiet
// and the poll alone looks.
func (q *Queue) Notify() (<-chan struct{}, func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, func() {}
	}
	dirs := q.ChangeDirs()
	_ = w.Add(q.Dir)
	for _, d := range dirs {
		_ = w.Add(d)
	}
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				made := ev.Has(fsnotify.Create) && slices.Contains(dirs, ev.Name)
				if made {
					_ = w.Add(ev.Name)
				}
				// Not the queue directory's own files.
				if made || slices.Contains(dirs, filepath.Dir(ev.Name)) {
					select {
					case out <- struct{}{}:
					default: // one pending wake is enough
					}
				}
				if q.notified != nil {
					q.notified(ev.Name)
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return out, func() {
		w.Close()
		<-done
	}
}
