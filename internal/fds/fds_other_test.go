//go:build !linux

package fds

const fdDirOfShell = "/dev/fd"
