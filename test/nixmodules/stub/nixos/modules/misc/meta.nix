# Stand-in for nixpkgs' nixos/modules/misc/meta.nix, which home-manager
# imports from pkgs.path: modules set meta.maintainers, meta.doc and the
# like, which only documentation reads.
{ lib, ... }:
{
  options.meta = lib.mkOption {
    type = lib.types.lazyAttrsOf lib.types.unspecified;
    default = { };
    internal = true;
    description = "Module metadata (maintainers, documentation); unused here.";
  };
}
