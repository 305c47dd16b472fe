# A development shell that queues its own inputs for Cachix each time it is
# entered, so that teammates and CI find the toolchain in the cache.
#
#   nix-shell examples/shell.nix
#
# The shellHook returns at once: `push` only queues the selected paths of the
# inputs' closures and leaves the upload to a background worker. hook.conf's
# allow/deny rules decide what goes (paths that cache.nixos.org already has
# cost nothing: `cachix push` skips them). Without cachix-filter-hook on PATH
# the hook does nothing, and it never makes entering the shell fail.
# See docs/nix-shell.md.
{
  pkgs ? import <nixpkgs> { },
}:

pkgs.mkShell {
  packages = [
    pkgs.go
    pkgs.gopls
  ];

  shellHook = ''
    if command -v cachix-filter-hook >/dev/null 2>&1; then
      # Word splitting is wanted: both variables are space-separated lists
      # of store paths. stdout goes to stderr so that `nix-shell --run` and
      # `nix develop --command` keep a clean stdout.
      if [ -n "''${nativeBuildInputs:-}''${buildInputs:-}" ]; then
        cachix-filter-hook push --closure ''${nativeBuildInputs:-} ''${buildInputs:-} </dev/null >&2 || true
      fi
    fi
  '';
}
