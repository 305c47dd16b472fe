//go:build !linux

package worker

import (
	"io/fs"
	"syscall"
)

// statOf is what a cheap check compares (see fileid_linux.go); without a
// ctime here, a chmod is noticed by the periodic re-hash or load.
func statOf(fi fs.FileInfo) fileStat {
	s := fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return s
}
