package nixstore

import (
	"context"
	"runtime"
	"strings"
	"sync"
)

// servePool shares the levels of one walk among up to max
// `nix-store --serve` processes. Nix answers a path-info query on one
// core, from its database (about 27 µs a path on the 2-core VM where
// this was written), so a level of thousands of paths is cut into
// chunks that idle processes take in turn. A process costs about 50 ms
// to start, so each beyond the first needs serveChunksPerProc more
// chunks in the level (about 4,000 paths): a closure whose levels are
// smaller is walked by one.
//
// On that VM, `push --closure` of bench/closure.nix's 10,000 paths went
// from 477 ms to 376 ms (`hyperfine -N --runs 10`, beside 386 ms for
// `nix-store --query --requisites` of the root); walking level by level
// with one process, instead of Nix's closure query, gave about 50 ms of
// it, the second process the rest.
type servePool struct {
	ctx     context.Context
	cancel  context.CancelFunc // ends every process
	n       Nix
	max     int // processes
	chunk   int // paths a question
	perProc int // chunks a level holds for each process it starts

	started int           // processes asked for, by the walk's goroutine
	work    chan serveJob // chunks for any idle process
	done    chan struct{} // closed by close: the processes' loops end

	mu       sync.Mutex
	procs    []*serveProc
	starting []*serveStart
	closed   bool
	failed   *serveProc // the first to fail: its stderr says why
	wg       sync.WaitGroup
}

// serveStart is a process being started beside the walk: close kills it
// if its handshake is not over, since nothing is left for it to do.
type serveStart struct {
	cancel context.CancelFunc
	over   bool
}

type serveJob struct {
	paths   []string
	answers chan<- serveAnswer
}

type serveAnswer struct {
	infos []PathInfo
	err   error
}

const (
	// serveChunk is how many paths one question holds.
	serveChunk = 512
	// serveChunksPerProc is how many chunks a level must hold for each
	// process that shares it.
	serveChunksPerProc = 8
	maxServeProcs      = 4
)

// serveSessions is how many processes a walk may use: one a core, up
// to maxServeProcs.
func serveSessions() int { return min(runtime.GOMAXPROCS(0), maxServeProcs) }

func newServePool(ctx context.Context, n Nix, max int) *servePool {
	ctx, cancel := context.WithCancel(ctx)
	return &servePool{ctx: ctx, cancel: cancel, n: n, max: max, chunk: serveChunk, perProc: serveChunksPerProc, work: make(chan serveJob), done: make(chan struct{})}
}

// ask answers one level of a walk.
func (p *servePool) ask(level []string) ([]PathInfo, error) {
	if p.started == 0 {
		// The first process starts before any question, so that a Nix
		// without the protocol fails here, and PathInfos falls back.
		sp, err := p.n.startServe(p.ctx, p.ctx)
		if err != nil {
			return nil, err
		}
		p.started = 1
		if !p.add(sp) {
			return nil, context.Canceled
		}
	}
	var chunks [][]string
	for len(level) > 0 {
		k := min(len(level), p.chunk)
		chunks = append(chunks, level[:k])
		level = level[k:]
	}
	for want := min(p.max, 1+len(chunks)/p.perProc); p.started < want; p.started++ {
		ctx, cancel := context.WithCancel(p.ctx)
		st := &serveStart{cancel: cancel}
		p.mu.Lock()
		p.starting = append(p.starting, st)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			sp, err := p.n.startServe(ctx, ctx)
			p.mu.Lock()
			st.over = true
			p.mu.Unlock()
			// One that does not start leaves the work to the others.
			if err == nil {
				p.add(sp)
			}
		}()
	}
	answers := make(chan serveAnswer, len(chunks))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, c := range chunks {
			select {
			case p.work <- serveJob{c, answers}:
			case <-stop:
				return
			}
		}
	}()
	// Every chunk a process takes is answered, if only by its error, and
	// the first process ends only on an error: this loop ends.
	var out []PathInfo
	for range chunks {
		select {
		case a := <-answers:
			if a.err != nil {
				return nil, a.err
			}
			out = append(out, a.infos...)
		case <-p.ctx.Done():
			return nil, p.ctx.Err()
		}
	}
	return out, nil
}

// add puts a started process to work, unless the pool is closed: then
// it ends it, outside the lock, as that may take a second.
func (p *servePool) add(sp *serveProc) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		sp.stop()
		return false
	}
	p.procs = append(p.procs, sp)
	p.wg.Add(1)
	go p.serve(sp)
	p.mu.Unlock()
	return true
}

// serve answers chunks with one process until the pool closes or the
// process fails.
func (p *servePool) serve(sp *serveProc) {
	defer p.wg.Done()
	for {
		select {
		case j := <-p.work:
			infos, err := sp.c.infos(j.paths)
			if err != nil {
				// Named before the walk hears of it: the walk then
				// closes the pool, whose kill fails the others' questions
				// too, and close must name this one, not one of those.
				p.mu.Lock()
				if p.failed == nil {
					p.failed = sp
				}
				p.mu.Unlock()
			}
			j.answers <- serveAnswer{infos, err}
			if err != nil {
				return
			}
		case <-p.done:
			return
		}
	}
}

// close ends the pool's loops. After a failure it also ends the
// processes and returns what the failed one printed; otherwise reaped
// ends them.
func (p *servePool) close(failed bool) string {
	p.mu.Lock()
	p.closed = true
	close(p.done)
	procs := p.procs
	for _, st := range p.starting {
		if !st.over {
			st.cancel()
		}
	}
	p.mu.Unlock()
	if !failed {
		return ""
	}
	p.cancel() // kills them all, and any still starting
	p.wg.Wait()
	var msg string
	for _, sp := range procs {
		m := sp.stop()
		if sp == p.failed {
			msg = m
		}
	}
	return strings.TrimSpace(msg)
}

// reaped ends the processes of a pool closed after a whole walk: each
// ends at the end of its input.
func (p *servePool) reaped() {
	p.wg.Wait()
	p.mu.Lock()
	procs := p.procs
	p.mu.Unlock()
	for _, sp := range procs {
		sp.stop()
	}
	p.cancel()
}
