# Stand-in for nixpkgs' nixos/modules/misc/assertions.nix, which
# home-manager imports from pkgs.path: the same two options.
{ lib, ... }:
{
  options = {
    assertions = lib.mkOption {
      type = lib.types.listOf lib.types.unspecified;
      internal = true;
      default = [ ];
      description = "Conditions that must hold, with the message shown when one does not.";
    };
    warnings = lib.mkOption {
      internal = true;
      default = [ ];
      type = lib.types.listOf lib.types.str;
      description = "Warnings printed when the configuration is evaluated.";
    };
  };
}
