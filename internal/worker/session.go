package worker

import "sync"

// sessionWatch watches the Nix processes plan waits for (see plan.go):
// when one ends, the worker wakes at once to push what they queued beside
// the running push. Each is watched through a pidfd by a goroutine that
// ends with it or with the worker; where pidfds are missing, or past
// maxWatched, the worker notices at its next look (pollInterval).
type sessionWatch struct {
	mu   sync.Mutex
	pids map[int32]bool
	wake chan struct{}
	stop chan struct{}
}

// maxWatched bounds the Nix processes watched at once (each a goroutine
// and a descriptor).
const maxWatched = 64

func newSessionWatch() *sessionWatch {
	return &sessionWatch{pids: map[int32]bool{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (sw *sessionWatch) watch(pids []int32) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for _, pid := range pids {
		if sw.pids[pid] || len(sw.pids) >= maxWatched {
			continue
		}
		fd, ok := openPidfd(pid)
		if !ok {
			continue
		}
		sw.pids[pid] = true
		go sw.await(pid, fd)
	}
}

func (sw *sessionWatch) await(pid int32, fd int) {
	defer closeFd(fd)
	defer func() {
		sw.mu.Lock()
		delete(sw.pids, pid)
		sw.mu.Unlock()
	}()
	for {
		select {
		case <-sw.stop:
			return
		default:
		}
		if exited(fd, 500) {
			break
		}
	}
	select {
	case sw.wake <- struct{}{}:
	default:
	}
}

// close ends the watching goroutines (within their poll's timeout).
func (sw *sessionWatch) close() {
	select {
	case <-sw.stop:
	default:
		close(sw.stop)
	}
}
