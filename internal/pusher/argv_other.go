//go:build !linux

package pusher

// argMax on macOS and the BSDs: ARG_MAX is 256 KiB or more.
func argMax() int { return 256 << 10 }
