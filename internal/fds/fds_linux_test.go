package fds

const fdDirOfShell = "/proc/$$/fd"
