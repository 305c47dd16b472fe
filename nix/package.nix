# The cachix-filter-hook package.
#
#   nix-build                      (default.nix)
#   nix build .#cachix-filter-hook (flake.nix)
#
# vendorHash is the NAR hash of what `go mod vendor` writes for this source.
# After go.mod or go.sum change, run ./nix/update-vendor-hash.sh: it
# recomputes the hash the same way buildGoModule's fixed-output derivation
# does, without nixpkgs, and rewrites the vendorHash line below.
#
# go.mod's `go` line sets the oldest Go that can build this, and nixpkgs
# builds with GOTOOLCHAIN=local: with an older nixpkgs, pass a newer Go, e.g.
#   pkgs.callPackage ./nix/package.nix { buildGoModule = pkgs.buildGo125Module; }
{
  lib,
  buildGoModule,
}:

buildGoModule rec {
  pname = "cachix-filter-hook";
  version = "0.1.0";

  # The repository without its Nix files, so that editing them (or the
  # vendorHash line) does not rebuild the binary. `go mod vendor` only looks
  # at go.mod, go.sum and the .go files, all of which stay.
  src = lib.cleanSourceWith {
    name = "cachix-filter-hook-source";
    src = lib.cleanSource ../.;
    filter =
      path: type:
      let
        base = baseNameOf path;
        rel = lib.removePrefix (toString ../. + "/") (toString path);
      in
      !(
        lib.hasSuffix ".nix" base
        || base == "flake.lock"
        || (type == "directory" && (rel == "nix" || rel == "examples"))
      );
  };

  vendorHash = "sha256-+uCM49u1S81MZ7kcN/QDc/AK4Ei31SuH2niIZ2VEkaM=";

  # Only the command; test/ holds end-to-end tests and the cachix stand-in.
  subPackages = [ "." ];

  # A static binary: it starts about 0.5 ms faster than a dynamically linked
  # one, and Nix runs the hook once per build.
  env.CGO_ENABLED = 0;

  ldflags = [
    "-s"
    "-w"
    "-X main.version=${version}"
  ];

  # The tests build real derivations in a real Nix store (they run nix-build,
  # nix-store and nix copy), which the build sandbox does not provide. Run
  # them with `go test ./...` on a machine with Nix instead.
  doCheck = false;

  meta = {
    description = "Nix post-build-hook that pushes the store paths selected by allow/deny globs to Cachix, through a durable queue";
    longDescription = ''
      cachix-filter-hook is set as nix.conf's post-build-hook. It selects
      built store paths with allow and deny glob rules from hook.conf and
      queues them on disk; a detached worker pushes them with `cachix push`
      (or `nix copy`) and retries with back-off, across reboots.
    '';
    mainProgram = "cachix-filter-hook";
    platforms = lib.platforms.unix;
  };
}
