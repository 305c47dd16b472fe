//go:build !linux

package pusher

import "os/exec"

func setDeathSignal(cmd *exec.Cmd) {}
