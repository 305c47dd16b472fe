#!/bin/sh
# The naive post-build-hook: push in the hook itself (the Nix manual's example).
set -eu -f
paths=${OUT_PATHS:-}
[ -n "$paths" ] || paths=$(nix-store --query --outputs "$DRV_PATH") # Nix 2.8 (NixOS/nix#6446)
exec "$BENCH_CACHIX" push "$BENCH_CACHE" $paths
