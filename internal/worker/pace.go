package worker

import "time"

// pace is what a target's last pusher calls took. After a push, while
// every path waiting for the target comes from Nix processes that are
// still building (see builds), plan lets the target rest for the
// shortest of those calls before the next: the part of a call that does
// not grow with its paths (starting cachix, asking the cache), about
// 1.1 s of each call in a 100-build loop where each path adds 1-2 ms.
// Without the rest, a burst made a call every pusher duration, 6 to 8
// for the loop's 6-8 s; with it, 4 or 5 (BENCHMARKS.md), and the paths
// held back are only those whose builds are followed by more: the last
// build of a burst goes as its hook returns (issue 22). When calls are
// long because they carry much (a slow upload), the rest is short next
// to them.
type pace struct {
	ended  time.Time
	recent [8]time.Duration
	n      int
}

// maxRest bounds the rest, whatever the calls took.
const maxRest = 10 * time.Second

// add notes a pusher call that succeeded, taking took and ending at end.
func (p *pace) add(took time.Duration, end time.Time) {
	p.recent[p.n%len(p.recent)] = took
	p.n++
	p.ended = end
}

// restUntil is when the target's rest after its last call ends; zero when
// it has made none.
func (p *pace) restUntil() time.Time {
	if p == nil || p.n == 0 {
		return time.Time{}
	}
	short := maxRest
	for _, d := range p.recent[:min(p.n, len(p.recent))] {
		short = min(short, d)
	}
	return p.ended.Add(short)
}
