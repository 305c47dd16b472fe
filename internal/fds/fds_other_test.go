//go:build !linux

package fds

const fdDirOfShell = "/dev/fd"

// closeRangeWorks: close_range is Linux's.
func closeRangeWorks() bool { return false }
