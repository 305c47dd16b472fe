#!/bin/sh
# The naive post-build-hook: push in the hook itself, as the Nix manual's
# example does, with the Nix 2.8 fallback for the empty OUT_PATHS
# (NixOS/nix#6446). The build loop waits for the whole upload.
set -eu
set -f
paths=${OUT_PATHS:-}
if [ -z "$paths" ]; then
	paths=$(nix-store --query --outputs "$DRV_PATH")
fi
exec "$BENCH_CACHIX" push "$BENCH_CACHE" $paths
