#!/bin/sh
# Backgrounded with & but not detached: the child keeps the hook's stdout and
# stderr, which Nix reads to EOF, so the build loop still waits.
set -eu -f
paths=${OUT_PATHS:-}
[ -n "$paths" ] || paths=$(nix-store --query --outputs "$DRV_PATH")
"$BENCH_CACHIX" push "$BENCH_CACHE" $paths &
