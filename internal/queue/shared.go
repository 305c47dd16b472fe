package queue

import (
	"io/fs"
	"slices"
	"sync"
	"syscall"
)

// fileID tells a shared file apart from any other, also from a later file
// that reuses its inode number.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// sharedID returns the identity of a file that may be shared by several
// entries (more than one link, or more than one entry's worth of bytes).
func sharedID(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	id := fileID{dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	return id, st.Nlink > 1 || fi.Size() > maxEntrySize
}

// sharedCache holds the parsed entries of the few shared files read last,
// until each is asked for: the worker and status read every entry once,
// in the directory's order, which mixes the entries of several files, so
// each file is parsed once and memory holds only what was parsed and not
// yet handed out.
type sharedCache struct {
	mu    sync.Mutex
	files map[fileID]map[string]*Entry
	order []fileID
}

const sharedCacheFiles = 8

func (c *sharedCache) get(id fileID, key string) (*Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, ok := c.files[id]
	if !ok {
		return nil, false
	}
	e, ok := all[key]
	if !ok {
		return nil, false
	}
	delete(all, key)
	if len(all) == 0 {
		delete(c.files, id)
		c.order = slices.DeleteFunc(c.order, func(x fileID) bool { return x == id })
	}
	e.key = key
	return e, true
}

func (c *sharedCache) put(id fileID, all map[string]*Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[fileID]map[string]*Entry{}
	}
	if _, ok := c.files[id]; !ok {
		c.order = append(c.order, id)
	}
	c.files[id] = all
	for len(c.order) > sharedCacheFiles {
		delete(c.files, c.order[0])
		c.order = c.order[1:]
	}
}
