module github.com/cachix-filter-hook/cachix-filter-hook

go 1.25

require (
	github.com/fsnotify/fsnotify v1.9.0
	github.com/gobwas/glob v1.1.0
	github.com/pelletier/go-toml/v2 v2.2.4
	github.com/rogpeppe/go-internal v1.16.0
	github.com/sirupsen/logrus v1.10.2
	github.com/spf13/pflag v1.0.10
	golang.org/x/sys v0.34.0
	golang.org/x/term v0.33.0
)

require golang.org/x/tools v0.35.0 // indirect
