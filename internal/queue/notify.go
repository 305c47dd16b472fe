package queue

import "github.com/fsnotify/fsnotify"

// Notify returns a channel that receives when an entry or a pin
// comes or goes (inotify on ChangeDirs), and a func that stops it. Where
// inotify is missing, or a directory is not there yet, the channel stays
// quiet and the poll alone looks.
func (q *Queue) Notify() (<-chan struct{}, func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, func() {}
	}
	for _, d := range q.ChangeDirs() {
		_ = w.Add(d)
	}
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default: // one pending wake is enough
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
