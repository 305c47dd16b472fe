# NixOS module: services.cachix-filter-hook.
#
#   imports = [ ./nix/nixos-module.nix ];   # or the flake's nixosModules.default
#   services.cachix-filter-hook = {
#     enable = true;
#     settings = { cache = "mycache"; allow = [ "*" ]; deny = [ "*-doc" ]; };
#     authTokenFile = "/run/secrets/cachix-token";
#   };
#
# It makes the binary Nix's post-build-hook, writes
# /etc/cachix-filter-hook/hook.conf from `settings`, and runs the queue's
# worker as a systemd service. See docs/nixos.md.
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

  cfg = config.services.cachix-filter-hook;

  settings = import ./settings.nix { inherit lib pkgs; };
  configFile = settings.generate cfg.settings;

  # The path every command below is given with --config: the file the
  # hook also finds on its own, and one that stays put across rebuilds.
  configPath = "/etc/cachix-filter-hook/hook.conf";

  exe = "${cfg.package}/bin/cachix-filter-hook";

  defaultQueueDir = "/var/lib/cachix-filter-hook";
  queueDir =
    let
      dir = cfg.settings.queue.dir or "";
    in
    if dir == "" then defaultQueueDir else dir;

  # What the hardened worker service may write: the queue (its log is in
  # there unless log.file says otherwise), the log's directory, and the
  # directories of file:// stores that targets push to with nix copy.
  # Everything else is read-only (ProtectSystem = "strict").
  logFile = cfg.settings.log.file or "";
  storeUris = lib.filter (u: u != null) (
    [ cfg.settings.store ] ++ map (t: t.store or null) (cfg.settings.target or [ ])
  );
  fileStoreDirs = map (u: builtins.head (lib.splitString "?" (lib.removePrefix "file://" u))) (
    lib.filter (lib.hasPrefix "file://") storeUris
  );
  writablePaths = lib.unique (
    lib.optional (queueDir != defaultQueueDir) queueDir
    ++ lib.optional (logFile != "") (dirOf logFile)
    ++ fileStoreDirs
  );

  # Whether any target is a Cachix cache (rather than a Nix store URI).
  usesCachix =
    cfg.settings.cache != null || lib.any (t: t ? cache) (cfg.settings.target or [ ]);
in
{
  options.services.cachix-filter-hook = {
    enable = mkEnableOption "cachix-filter-hook as Nix's post-build-hook, with its queue worker";

    package = mkOption {
      type = types.package;
      default = pkgs.cachix-filter-hook or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.cachix-filter-hook or (pkgs.callPackage ./nix/package.nix { })";
      description = ''
        The cachix-filter-hook package. By default the one the flake's overlay
        adds to pkgs, else the one built from this repository with the
        system's nixpkgs.
      '';
    };

    settings = mkOption {
      type = settings.type { storeExample = "file:///var/cache/nix"; };
      default = { };
      example = literalExpression ''
        {
          cache = "mycache";
          allow = [ "*" ];
          deny = [ "*-doc" "nixos-system-*" ];
          cachix.push_args = [ "-j" "8" ];
          queue.retry_max = "30m";
          target = [ { cache = "work"; allow = [ "openc910-*" ]; } ];
        }
      '';
      description = ''
        The contents of /etc/cachix-filter-hook/hook.conf, as Nix values; the
        keys are those of hook.conf.example (`cache`, `store`, `allow`,
        `deny`, `closure_deny`, `strict`, `target`, `cachix.*`, `nix.*`,
        `queue.*`, `log.*`). Unknown keys make the hook refuse the file.
        `nix.bin_dir` defaults to the system's Nix, and `cachix.bin` to
        pkgs.cachix when a target is a Cachix cache: the nix-daemon that runs
        the hook has neither on its PATH.
      '';
    };

    authTokenFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/cachix-token";
      description = ''
        File holding the Cachix auth token, given to `cachix push` as
        CACHIX_AUTH_TOKEN; it sets `settings.cachix.auth_token_file`. It must
        be owned by root and writable by no one else. Give it as a string:
        a Nix path literal would be fine too (it is not copied), but a token
        must never end up in the world-readable store.
      '';
    };

    pushOnActivation = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether `nixos-rebuild switch` (and `test`) also queue the selected
        paths of the new system's whole closure
        (`cachix-filter-hook push --closure "$systemConfig"`), including
        paths that were substituted rather than built, which the
        post-build-hook never sees. It does not wait for the upload, and
        never fails the switch.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !(cfg.settings.cache != null && cfg.settings.store != null);
        message = "services.cachix-filter-hook.settings: set `cache` or `store`, not both (add more destinations as `target` entries).";
      }
      {
        assertion = cfg.settings.cache != null || cfg.settings.store != null || (cfg.settings.target or [ ]) != [ ];
        message = "services.cachix-filter-hook.settings: no destination: set `cache` (a Cachix cache), `store` (a Nix store URI) or `target`.";
      }
    ];

    services.cachix-filter-hook.settings = {
      nix.bin_dir = mkDefault "${config.nix.package}/bin";
      cachix.bin = mkIf usesCachix (mkDefault "${lib.getBin pkgs.cachix}/bin/cachix");
      cachix.auth_token_file = mkIf (cfg.authTokenFile != null) (toString cfg.authTokenFile);
    };

    # Nix runs it with no arguments after every local build, as root under
    # the daemon. It exits 0 whatever happens and returns in milliseconds.
    nix.settings.post-build-hook = exe;

    environment.systemPackages = [ cfg.package ];

    environment.etc."cachix-filter-hook/hook.conf".source = configFile;

    # The queue, and the other directories the worker service may write
    # (ReadWritePaths needs them to exist when it starts).
    systemd.tmpfiles.rules = [
      "d ${queueDir} 0700 root root -"
    ]
    ++ map (d: "d ${d} 0755 root root -") (lib.remove queueDir writablePaths);

    # The queue is on disk, so what a reboot interrupted is still there.
    # Instead of a separate resume unit, the worker is a plain long-running
    # service that starts at boot: it drains whatever was left, then waits
    # for what the hook queues next. A worker the hook itself starts (which
    # it does when none holds the queue's lock) finds this one holding it
    # and leaves the work to it; if this service is stopped, those on-demand
    # workers take over, so pushing never depends on it.
    systemd.services.cachix-filter-hook-worker = {
      description = "cachix-filter-hook queue worker (pushes queued store paths)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      path = [ config.nix.package ];
      # Nix as root would open the store directly, which ProtectSystem
      # makes read-only: it goes through the daemon, as users' Nix does.
      environment.NIX_REMOTE = "daemon";
      serviceConfig = {
        ExecStart = "${exe} --config ${configPath} worker";
        Restart = "on-failure";
        RestartSec = "10s";

        # Hardening. The worker runs as root (it reads root's hook.conf
        # and token, and owns the queue the hook writes as root); it runs
        # `cachix push`, which needs the network, and `nix copy`, which
        # needs the nix-daemon's socket. What it may write is listed above.
        StateDirectory = lib.mkIf (queueDir == defaultQueueDir) "cachix-filter-hook";
        StateDirectoryMode = "0700";
        # "-": no error if it is missing (the daemon creates it).
        ReadWritePaths = writablePaths ++ [ "-/nix/var/nix/daemon-socket" ];
        ProtectSystem = "strict";
        # Read-only rather than hidden: cachix reads root's
        # ~/.config/cachix/cachix.dhall when no token file is set.
        ProtectHome = "read-only";
        PrivateTmp = true;
        PrivateDevices = true;
        NoNewPrivileges = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        # Unix sockets for the daemon, IP for the caches, netlink for the
        # resolver's address checks.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];
        # No UMask: nix copy to a file:// store writes the cache's files
        # with the worker's umask, and a web server must read them. The
        # queue's files have modes of their own. No
        # MemoryDenyWriteExecute: cachix is a Haskell program, and
        # nothing here tests it under that restriction.
      };
    };

    # Queue the new system's closure on switch/test. NIXOS_ACTION is unset
    # when the activation script runs at boot, before the network is up:
    # nothing is queued then (the worker service resumes the queue anyway).
    # `push` returns once the paths are queued; timeout bounds even that, and
    # `|| true` keeps any failure from failing the switch.
    system.activationScripts.cachix-filter-hook = mkIf cfg.pushOnActivation {
      deps = [ "etc" ];
      text = ''
        case "''${NIXOS_ACTION:-}" in
          switch | test)
            ${pkgs.coreutils}/bin/timeout 60 ${exe} --config ${configPath} push --closure "$systemConfig" </dev/null || true
            ;;
        esac
      '';
    };
  };
}
