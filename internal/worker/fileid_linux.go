package worker

import (
	"io/fs"
	"syscall"
)

// statOf is what a cheap check compares: a rewrite in place changes size
// or mtime, a chmod or chown the ctime, a rename over the file the inode.
func statOf(fi fs.FileInfo) fileStat {
	s := fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), uint64(st.Ino)
		s.ctime = st.Ctim.Nano()
	}
	return s
}
