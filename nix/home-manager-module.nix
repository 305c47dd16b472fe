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
  inherit (lib)
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  cfg = config.programs.cachix-filter-hook;

  settings = import ./settings.nix { inherit lib pkgs; };
  configFile = settings.generate cfg.settings;

  configPath = "${config.xdg.configHome}/cachix-filter-hook/hook.conf";

  exe = "${cfg.package}/bin/cachix-filter-hook";

  nixPackage = config.nix.package or null;

  # Whether any target is a Cachix cache (rather than a Nix store URI).
  usesCachix =
    cfg.settings.cache != null || lib.any (t: t ? cache) (cfg.settings.target or [ ]);
in
{
  options.programs.cachix-filter-hook = {
    enable = mkEnableOption "cachix-filter-hook, which pushes the store paths selected by allow/deny globs to Cachix";

    package = mkOption {
      type = types.package;
      default = pkgs.cachix-filter-hook or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.cachix-filter-hook or (pkgs.callPackage ./nix/package.nix { })";
      description = ''
        The cachix-filter-hook package. By default the one the flake's overlay
        adds to pkgs, else the one built from this repository with
        home-manager's nixpkgs.
      '';
    };

    settings = mkOption {
      type = settings.type { storeExample = "file:///home/me/nix-cache"; };
      default = { };
      example = literalExpression ''
        {
          cache = "mycache";
          allow = [ "*" ];
          deny = [ "*-doc" "home-manager-*" ];
          cachix.auth_token_file = "/run/user/1000/secrets/cachix-token";
        }
      '';
      description = ''
        The contents of ~/.config/cachix-filter-hook/hook.conf, as Nix
        values; the keys are those of hook.conf.example (`cache`, `store`,
        `allow`, `deny`, `closure_deny`, `strict`, `target`, `cachix.*`,
        `nix.*`, `queue.*`, `log.*`). Unknown keys make the program refuse
        the file. CACHIX_FILTER_HOOK_* environment variables still override
        it. `cachix.bin` defaults to pkgs.cachix when a target is a Cachix
        cache, and `nix.bin_dir` to `nix.package` when that is set, because
        home-manager's activation runs with a short PATH.
      '';
    };

    authTokenFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/user/1000/secrets/cachix-token";
      description = ''
        File holding the Cachix auth token; it sets
        `settings.cachix.auth_token_file`. Give it as a string, so that the
        token never ends up in the world-readable store.
      '';
    };

    pushOnActivation = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether each activation (`home-manager switch`) also queues the
        selected paths of the new generation's whole closure
        (`cachix-filter-hook push --closure "$newGenPath"`). It does not wait
        for the upload and never fails the activation; `--dry-run` (or
        `home-manager build`) only prints the command.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !(cfg.settings.cache != null && cfg.settings.store != null);
        message = "programs.cachix-filter-hook.settings: set `cache` or `store`, not both (add more destinations as `target` entries).";
      }
      {
        # Without one, hook.conf is written but every command refuses it.
        assertion = cfg.settings.cache != null || cfg.settings.store != null || (cfg.settings.target or [ ]) != [ ];
        message = "programs.cachix-filter-hook.settings: no destination: set `cache` (a Cachix cache), `store` (a Nix store URI) or `target`.";
      }
    ];

    programs.cachix-filter-hook.settings = {
      cachix.bin = mkIf usesCachix (mkDefault "${lib.getBin pkgs.cachix}/bin/cachix");
      nix.bin_dir = mkIf (nixPackage != null) (mkDefault "${nixPackage}/bin");
      cachix.auth_token_file = mkIf (cfg.authTokenFile != null) (toString cfg.authTokenFile);
    };

    home.packages = [ cfg.package ];

    xdg.configFile."cachix-filter-hook/hook.conf".source = configFile;

    # After writeBoundary, and after linkGeneration so that the new hook.conf
    # is in place. `run` (home-manager >= 23.11; $DRY_RUN_CMD before it)
    # only prints the command on a dry run. `push` returns once the paths
    # are queued and a worker is started; `|| true` keeps a failure from
    # failing the activation.
    home.activation.cachix-filter-hook = mkIf cfg.pushOnActivation (
      lib.hm.dag.entryAfter [ "writeBoundary" "linkGeneration" ] ''
        if declare -F run >/dev/null; then
          run ${exe} --config ${lib.escapeShellArg configPath} push --closure "$newGenPath" </dev/null || true
        else
          ''${DRY_RUN_CMD:-} ${exe} --config ${lib.escapeShellArg configPath} push --closure "$newGenPath" </dev/null || true
        fi
      ''
    );
  };
}
