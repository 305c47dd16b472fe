//go:build !linux

package fds

// macOS and the BSDs list a process's descriptors in /dev/fd.
const fdDir = "/dev/fd"
