# The Go packages whose tests nix/package.nix runs in checkPhase: those that
# need no Nix, no network and no HOME (the build sandbox has none of them).
# The end-to-end tests (test/) and cli's scripts build with real Nix.
# test/nixmodules runs exactly these with no Nix on PATH, HOME unset and
# GOPROXY=off, so a test that starts needing one of those fails there
# first.
[
  "./internal/config"
  "./internal/escape"
  "./internal/eventually"
  "./internal/fds"
  "./internal/fds/fdstest"
  "./internal/filter"
  "./internal/history"
  "./internal/hook"
  "./internal/logfile"
  "./internal/metrics"
  "./internal/nixstore"
  "./internal/pathfacts"
  "./internal/pkglist"
  "./internal/policy"
  "./internal/procgroup"
  "./internal/pushed"
  "./internal/pusher"
  "./internal/queue"
  "./internal/refscan"
  "./internal/safeopen"
  "./internal/storepath"
  "./internal/storewatch"
  "./internal/suggest"
  "./internal/termwidth"
  "./internal/trust"
  "./internal/upstream"
  "./internal/worker"
  "./test/cachix-standin"
]
