package worker

import "syscall"

// ctimeOf is the inode's change time, which a chmod or chown moves.
func ctimeOf(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }
