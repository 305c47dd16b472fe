{
  description = "Nix post-build-hook that pushes the store paths selected by allow/deny globs to Cachix";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          cachix-filter-hook = pkgs.callPackage ./nix/package.nix { };
        in
        {
          inherit cachix-filter-hook;
          default = cachix-filter-hook;
        }
      );

      # Adds pkgs.cachix-filter-hook, built with the nixpkgs it is applied
      # to. The modules below use it when it is there.
      overlays.default = final: prev: {
        cachix-filter-hook = final.callPackage ./nix/package.nix { };
      };

      # The modules build the package with the system's own nixpkgs
      # (pkgs.cachix-filter-hook when the overlay is applied, else
      # pkgs.callPackage ./nix/package.nix { }); set `package` to use
      # another build, e.g. self.packages.${system}.default.
      nixosModules.default = ./nix/nixos-module.nix;
      nixosModules.cachix-filter-hook = ./nix/nixos-module.nix;
      homeManagerModules.default = ./nix/home-manager-module.nix;
      homeManagerModules.cachix-filter-hook = ./nix/home-manager-module.nix;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      });
    };
}
