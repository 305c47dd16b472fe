// Command floor does nothing. Built the same way as cachix-filter-hook
// (CGO_ENABLED=0 go build), it is the floor for any exec'd Go hook: the
// cost of exec and the Go runtime's start and exit.
package main

func main() {}
