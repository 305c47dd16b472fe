# home-manager module: programs.cachix-filter-hook.
#
#   imports = [ ./nix/home-manager-module.nix ];  # or the flake's homeManagerModules.default
#   programs.cachix-filter-hook = {
#     enable = true;
#     settings = { cache = "mycache"; allow = [ "*" ]; deny = [ "*-doc" ]; };
#     pushOnActivation = true;
#   };
#
# It installs the command, writes ~/.config/cachix-filter-hook/hook.conf
# from `settings`, and can queue each new home-manager generation. It does
# not set Nix's post-build-hook: on a multi-user install only root's
# nix.conf can (see docs/home-manager.md). Everything here works whether or
# not the hook is also set system-wide.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkIf;

  cfg = config.programs.cachix-filter-hook;

  configFile = (import ./settings.nix { inherit lib pkgs; }).generate cfg.package cfg.settings;

  configPath = "${config.xdg.configHome}/cachix-filter-hook/hook.conf";

  exe = lib.getExe cfg.package;

  # As in the NixOS module: `push` returns once the paths are queued, and
  # the timeout bounds even that.
  pushCmd = "${lib.getExe' pkgs.coreutils "timeout"} 60 ${exe} --config ${lib.escapeShellArg configPath} ${lib.escapeShellArgs cfg.activationPushArgs} \"$newGenPath\"";
in
{
  imports = [
    (import ./shared-options.nix {
      path = [
        "programs"
        "cachix-filter-hook"
      ];
      enableText = "cachix-filter-hook, which pushes the store paths selected by allow/deny globs to Cachix";
      configPath = "~/.config/cachix-filter-hook/hook.conf (xdg.configHome)";
      storeExample = "file:///home/me/nix-cache";
      settingsExample = ''
        {
          cache = "mycache";
          allow = [ "*" ];
          deny = [ "*-doc" "home-manager-*" ];
          cachix.auth_token_file = "/run/user/1000/secrets/cachix-token";
        }
      '';
      tokenExample = "/run/user/1000/secrets/cachix-token";
      activation = {
        when = "each activation (`home-manager switch`)";
        root = "$newGenPath";
        pin = "{host}-home";
      };
      profile = {
        name = "home";
        option = [
          "home"
          "extraDependencies"
        ];
        text = "the home generation's closure (home.extraDependencies)";
      };
    })
  ];

  config = mkIf cfg.enable {
    home.packages = [ cfg.package ];

    xdg.configFile."cachix-filter-hook/hook.conf".source = configFile;

    # After writeBoundary, and after linkGeneration so that the new hook.conf
    # is in place. `run` (home-manager >= 23.11; $DRY_RUN_CMD before it)
    # only prints the command on a dry run. `push` returns once the paths
    # are queued and a worker is started (within pushCmd's timeout);
    # `|| true` keeps a failure from failing the activation.
    home.activation.cachix-filter-hook = mkIf cfg.pushOnActivation.enable (
      lib.hm.dag.entryAfter [ "writeBoundary" "linkGeneration" ] ''
        if declare -F run >/dev/null; then
          run ${pushCmd} </dev/null || true
        else
          ''${DRY_RUN_CMD:-} ${pushCmd} </dev/null || true
        fi
      ''
    );
  };
}
