package worker

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// copyPusher prints what nix copy prints: a line, then one per path.
type copyPusher struct{ fakePusher }

func (c *copyPusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	fmt.Fprintf(out, "copying %d paths...\n", len(paths))
	for _, p := range paths {
		fmt.Fprintf(out, "copying path '%s' to 'file:///tmp/cache'...\n", p)
	}
	return nil
}

// A batch of 2,000 paths adds a line or two to the log at info level,
// whatever the pusher prints per path (issue 22: 10,000 `copying path`
// lines, 2.1 MB, went into worker.log for one batch); at debug level the
// per-path lines are there.
func TestPushOutputSummedUp(t *testing.T) {
	for _, level := range []logrus.Level{logrus.InfoLevel, logrus.DebugLevel} {
		t.Run(level.String(), func(t *testing.T) {
			fakeStore(t)
			e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
			e.cfg.Queue.Batch = 10000
			var names []string
			for i := range 2000 {
				names = append(names, fmt.Sprintf("p-%d", i))
			}
			e.add(t, "main", build(t, names...)...)
			w := e.worker(nil)
			w.log.Level = level
			w.pushers["main"] = &copyPusher{}
			if err := run(t, w, Once); err != nil {
				t.Fatalf("Run(Once) = %v", err)
			}
			log := e.log.String()
			lines := strings.Count(log, "\n")
			pushed := ""
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "msg=pushed") {
					pushed = l
				}
			}
			if !strings.Contains(pushed, `output="copying 2000 paths..."`) || !strings.Contains(pushed, "output_lines=2001") || !strings.Contains(pushed, "paths=2000") {
				t.Errorf("the pushed line does not sum up the output: %q", pushed)
			}
			if level == logrus.InfoLevel && lines > 6 {
				t.Errorf("%d lines in the log at info level for one batch, want a few:\n%.2000s", lines, log)
			}
			if level == logrus.DebugLevel && strings.Count(log, "copying path '") != 2000 {
				t.Errorf("%d per-path lines at debug level, want 2000", strings.Count(log, "copying path '"))
			}
		})
	}
}
