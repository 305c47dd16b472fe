# Stand-ins for the NixOS options that nix/nixos-module.nix sets. NixOS's
# modules are in full nixpkgs, which cannot be fetched here; these declare
# the same option names with types loose enough for any value NixOS takes,
# so that the test can read back what the module set.
{ lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  # attrsOf, not lazyAttrsOf: a definition under mkIf false leaves no
  # attribute behind, as in NixOS.
  anything = types.attrsOf types.anything;
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    nix.settings = mkOption {
      type = anything;
      default = { };
    };
    # NixOS writes it into nix.conf after nix.settings.
    nix.extraOptions = mkOption {
      type = types.lines;
      default = "";
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          freeformType = anything;
          options.source = mkOption { type = types.path; };
        }
      );
      default = { };
    };
    # nixos/modules/services/monitoring/prometheus/exporters: what the
    # module reads of the node exporter.
    services.prometheus.exporters.node = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      extraFlags = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    };
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    systemd.services = mkOption {
      type = types.attrsOf (
        types.submodule {
          freeformType = anything;
          options.serviceConfig = mkOption {
            type = anything;
            default = { };
          };
          options.environment = mkOption {
            type = types.attrsOf types.str;
            default = { };
          };
        }
      );
      default = { };
    };
    system.extraDependencies = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    system.activationScripts = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.deps = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          options.text = mkOption { type = types.lines; };
        }
      );
      default = { };
    };
  };
}
