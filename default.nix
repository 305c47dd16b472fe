# Builds cachix-filter-hook with the nixpkgs on NIX_PATH:
#   nix-build            ->  ./result/bin/cachix-filter-hook
#   nix-env -if .        (or add the result to a profile)
{
  pkgs ? import <nixpkgs> { },
}:
pkgs.callPackage ./nix/package.nix { }
