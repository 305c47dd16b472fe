#!/bin/sh
# The naive hook that "backgrounds" the upload with & but does not detach
# it: the child keeps the hook's stdout and stderr, and Nix reads them to
# EOF, so the build loop still waits for the whole upload.
set -eu
set -f
paths=${OUT_PATHS:-}
if [ -z "$paths" ]; then
	paths=$(nix-store --query --outputs "$DRV_PATH")
fi
"$BENCH_CACHIX" push "$BENCH_CACHE" $paths &
