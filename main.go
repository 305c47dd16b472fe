// Command cachix-filter-hook is a Nix post-build-hook that pushes the store
// paths chosen by allow and deny rules to Cachix, through a durable queue
// and a detached worker. See README.md.
package main

import (
	"os"

	"github.com/cachix-filter-hook/cachix-filter-hook/cli"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build, nix/package.nix); empty, cli.Version reads the build info.
var version string

func main() {
	os.Exit(cli.Main(version, os.Args[1:]))
}
