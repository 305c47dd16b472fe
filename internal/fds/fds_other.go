//go:build !linux

package fds

// macOS and the BSDs list a process's descriptors in /dev/fd.
var fdDir = "/dev/fd"

func closeRange() bool { return false }
