{
  # A stand-in for nixpkgs in `nix flake check` of this repository, where
  # nixpkgs cannot be fetched: nixpkgs.lib's lib, and the few packages the
  # flake's outputs use (./pkgs.nix), which evaluate but never build.
  #
  #   nix flake check --no-build --no-write-lock-file \
  #     --override-input nixpkgs path:$PWD/test/nixmodules/stub \
  #     --override-input nixpkgs/lib path:/path/to/nixpkgs.lib \
  #     path:$PWD
  description = "nixpkgs stand-in for evaluating cachix-filter-hook's flake";

  inputs.lib.url = "github:nix-community/nixpkgs.lib";

  outputs =
    { self, lib }:
    {
      lib = lib.lib;
      legacyPackages = lib.lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ] (system: import ./pkgs.nix { lib = lib.lib; inherit system; });
    };
}
