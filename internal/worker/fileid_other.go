//go:build !linux

package worker

import "syscall"

// ctimeOf is 0: without a ctime here, a chmod is noticed by the periodic
// re-hash or load.
func ctimeOf(*syscall.Stat_t) int64 { return 0 }
