#!/usr/bin/env bash
# make demo: the main job end to end on this machine, with no Cachix
# account. Builds a few throwaway derivations with cachix-filter-hook as
# Nix's post-build-hook, pushing to a local file:// binary cache, waits for
# the worker, and shows what was pushed and what was skipped by which rule.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nix-build >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "demo: Nix is missing; run as root to install Debian's nix-bin, or install Nix" >&2
		exit 1
	fi
	echo "==> installing nix-bin"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nix-bin >/dev/null
fi

echo "==> building cachix-filter-hook"
mkdir -p build
CGO_ENABLED=0 go build -o build/cachix-filter-hook .
bin=$PWD/build/cachix-filter-hook

demo=$(mktemp -d /tmp/cachix-filter-hook-demo.XXXXXX)
chmod 755 "$demo"
cat >"$demo/hook.conf" <<CONF
# Push hello and ripgrep to a local binary cache, but never docs.
name = "local"
store = "file://$demo/cache"
allow = ["hello-*", "ripgrep-*"]
deny  = ["*-doc"]

[queue]
dir = "$demo/queue"
linger = "1s"
CONF
chmod 0644 "$demo/hook.conf"
export CACHIX_FILTER_HOOK_CONFIG=$demo/hook.conf
echo "==> config ($demo/hook.conf)"
sed 's/^/    /' "$demo/hook.conf"

salt=$(date +%s%N)
# Each output gets the salt, so every run really builds (the hook runs only
# for builds, not for paths already in the store).
cat >"$demo/builder.sh" <<'SH'
for o in $outputs; do eval "echo \"$salt $o\" > \"\$$o\""; done
SH
cat >"$demo/packages.nix" <<NIX
let
  pkg = name: outputs: derivation {
    inherit name outputs;
    salt = "$salt";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ ./builder.sh ];
  };
in [
  (pkg "hello-2.12.1" [ "out" "doc" ])
  (pkg "ripgrep-14.1.0" [ "out" ])
  (pkg "zlib-1.3" [ "out" "dev" ])
]
NIX

echo "==> nix-build with post-build-hook = $bin"
nix-build "$demo/packages.nix" --no-out-link --option substituters "" \
	--option post-build-hook "$bin" 2>&1 | grep -E 'building|cachix-filter-hook' | sed 's/^/    /'

echo "==> cachix-filter-hook wait"
"$bin" wait --timeout 60s

echo "==> what the rules decided (cachix-filter-hook explain)"
drvs=$(nix-instantiate "$demo/packages.nix" 2>/dev/null)
# shellcheck disable=SC2086
"$bin" explain $(nix-store --query --outputs $drvs) | sed 's/^/    /'

echo "==> in the binary cache $demo/cache"
grep -h '^StorePath:' "$demo"/cache/*.narinfo | sed 's/^StorePath: /    /' | sort

"$bin" status | sed 's/^/    /'
echo "==> done; remove $demo when you have looked around"
