package cli

import (
	"runtime/debug"
)

// Version is the version the program reports: the one the build stamped
// (make build: git describe; nix/package.nix: the package's version),
// else the module's version from the build info (go install ...@v1.2.3,
// or the pseudo-version Go stamps from the VCS), else the commit the
// build info records, else "dev" when nothing is known.
func Version(stamped string) string {
	if stamped != "" {
		return stamped
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return "dev-" + rev
}
