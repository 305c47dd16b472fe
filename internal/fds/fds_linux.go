package fds

const fdDir = "/proc/self/fd"
