package worker

import (
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// remember records the paths of a successful push in the target's record
// of pushed paths, so that the hook and `push` leave them out next time
// without a pusher call (issue 12: a second `push --closure` of a system
// queued and pushed all of it again). Only the worker writes records. A
// failure costs only a push of the same paths later, so it is logged.
func (w *Worker) remember(log *logrus.Entry, t *config.Target, sent []*queue.Entry) {
	if w.cfg.Queue.RememberPushed <= 0 {
		return
	}
	// By destination, not by target name: a push that started before a
	// reload pointed the target elsewhere ends after it, and must neither
	// be recorded for the new destination nor leave its record where the
	// pushes to the new one would find it.
	key := t.RecordKey()
	rec := w.records[key]
	if rec != nil && rec.Replaced() {
		rec.Close()
		rec = nil
	}
	if rec == nil {
		var err error
		if rec, err = pushed.OpenWrite(w.q.Dir, t.RecordKey(), w.cfg.Queue.RememberPushed); err != nil {
			log.WithError(err).Warn("cannot record pushed paths; they will be pushed again when queued again")
			return
		}
		w.records[key] = rec
	}
	hashes := make([]pushed.Hash, 0, len(sent))
	for _, e := range sent {
		p, err := storepath.Parse(storepath.StoreDir(), e.Path)
		if err != nil {
			continue
		}
		if h, err := pushed.ParseHash(p.Hash); err == nil {
			hashes = append(hashes, h)
		}
	}
	if err := rec.Add(hashes, time.Now()); err != nil {
		log.WithError(err).Warn("cannot record pushed paths; they will be pushed again when queued again")
	}
}

// closeRecords closes the records the worker opened.
func (w *Worker) closeRecords() {
	for key, r := range w.records {
		r.Close()
		delete(w.records, key)
	}
}
