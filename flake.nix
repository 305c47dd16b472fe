{
  description = "Nix post-build-hook that pushes the store paths selected by allow/deny globs to Cachix";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # Linux only, as the package's meta.platforms: on darwin nixpkgs
      # refuses to evaluate it, and `nix flake check` failed there (and,
      # before Nix 2.16, which checks every system, on Linux too).
      systems = [
        "x86_64-linux"
        "aarch64-linux"
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

      # Package lists: cfh.lib.cachixPackages { packages = [ pkgs.openc910 ]; }
      # is a small derivation to put where packages go (home.packages,
      # environment.systemPackages, mkShell's packages); when Nix builds
      # it, the hook queues what it names for the targets with
      # package_lists = true. It needs no nixpkgs (see nix/lib.nix).
      lib = import ./nix/lib.nix { };

      # Adds pkgs.cachix-filter-hook, built with the nixpkgs it is applied
      # to. The modules below use it when it is there.
      overlays.default = final: prev: {
        cachix-filter-hook = final.callPackage ./nix/package.nix { };
      };

      # The modules build the package with the system's own nixpkgs
      # (pkgs.cachix-filter-hook when the overlay is applied, else
      # pkgs.callPackage ./nix/package.nix { }); set `package` to use
      # another build, e.g. self.packages.${system}.default.
      #
      # Each is a module that imports the file, not the path itself: `nix
      # flake check` wants a function or an attribute set. home-manager's
      # own flake calls its output homeModules; homeManagerModules is the
      # older name, kept for configurations that use it.
      nixosModules.default = self.nixosModules.cachix-filter-hook;
      nixosModules.cachix-filter-hook = {
        imports = [ ./nix/nixos-module.nix ];
      };
      homeModules.default = self.homeModules.cachix-filter-hook;
      homeModules.cachix-filter-hook = {
        imports = [ ./nix/home-manager-module.nix ];
      };
      homeManagerModules = self.homeModules;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      });
    };
}
