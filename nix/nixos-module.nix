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
  inherit (lib) mkIf;

  cfg = config.services.cachix-filter-hook;

  settings = import ./settings.nix { inherit lib pkgs; };
  configFile = settings.generate cfg.package cfg.settings;

  # The path every command below is given with --config: the file the
  # hook also finds on its own, and one that stays put across rebuilds.
  configPath = "/etc/cachix-filter-hook/hook.conf";

  exe = lib.getExe cfg.package;

  defaultQueueDir = "/var/lib/cachix-filter-hook";
  # Paths as hook.conf names them: a path literal as its path (see
  # settings.nix).
  queueDir =
    let
      dir = toString (cfg.settings.queue.dir or "");
    in
    if dir == "" then defaultQueueDir else dir;

  # What the hardened worker service may write: the queue (its log is in
  # there unless log.file says otherwise), the log's directory, and the
  # directories of file:// and local stores that targets push to with
  # nix copy.
  # Everything else is read-only (ProtectSystem = "strict").
  logFile = toString (cfg.settings.log.file or "");
  storeUris = map toString (
    lib.filter (u: u != null) ([ cfg.settings.store ] ++ map (t: t.store or null) (cfg.settings.target or [ ]))
  );
  # What follows "scheme:" in a store URI, and its "//": Nix reads
  # file:/srv/cache as file:///srv/cache (see schemeRest in
  # internal/config/storeuri.go).
  schemeRest = scheme: u: lib.removePrefix "//" (lib.removePrefix "${scheme}:" u);
  # As Nix reads the path: %-decoded (file:///srv/my%20cache is
  # "/srv/my cache"), and as written too where that differs: Nix 2.8
  # does not decode it, and which later versions do everywhere is not
  # sure (an empty directory is the cost of a failed push saved). Later
  # Nix ends the decoded path at a '#', as FileStoreDirs does.
  fileStoreDirs = lib.concatMap (
    u:
    let
      raw = builtins.head (lib.splitString "?" (schemeRest "file" u));
    in
    lib.unique [
      (settings.percentDecode (builtins.head (lib.splitString "#" raw)))
      raw
    ]
  ) (lib.filter (lib.hasPrefix "file:") storeUris);
  # The directories of local stores that targets push to, which nix copy
  # opens itself, as root (as the worker's check reads them, see
  # LocalStoreDirs in internal/config/storeuri.go): a path, local:// or
  # local-overlay://, the directories its root=, state=, log= and
  # upper-layer= name, and those of a local-overlay:// store's local
  # lower-store=; decoded and as written, as for file:// above. The
  # store directory apart (real=, or store= with no root): Nix wants it
  # root's, sticky and writable by the build users' group, and the
  # worker may not chown it.
  localStoreDirs =
    depth: u:
    let
      noFrag = builtins.head (lib.splitString "#" u);
      parts = lib.splitString "?" noFrag;
      base = builtins.head (lib.splitString "?" u);
      query = lib.concatStringsSep "?" (lib.tail parts);
      params = map (
        kv:
        let
          nv = lib.splitString "=" kv;
        in
        {
          name = settings.percentDecode (builtins.head nv);
          value = lib.concatStringsSep "=" (lib.tail nv);
          set = lib.length nv > 1;
        }
      ) (if lib.length parts > 1 then lib.splitString "&" query else [ ]);
      both = v: lib.unique [
        (settings.percentDecode v)
        v
      ];
      valuesOf = names: lib.concatMap (p: if p.set && lib.elem p.name names then both p.value else [ ]) params;
      scheme = lib.findFirst (s: lib.hasPrefix "${s}:" u) null [
        "local"
        "local-overlay"
      ];
      roots =
        if lib.hasPrefix "/" u then
          [ base ]
        else if scheme != null then
          both (builtins.head (lib.splitString "#" (schemeRest scheme base)))
        else
          [ ];
      overlay = scheme == "local-overlay" || base == "local-overlay";
      lowers = lib.concatMap (
        p:
        let
          lower = settings.percentDecode p.value;
          lbase = builtins.head (lib.splitString "?" lower);
        in
        if
          overlay
          && depth < 4
          && p.set
          && p.name == "lower-store"
          && (
            lib.hasPrefix "/" lower
            || lib.hasPrefix "local:" lower
            || lib.hasPrefix "local-overlay:" lower
            || lib.elem lbase [
              ""
              "auto"
              "local"
              "local-overlay"
            ]
          )
        then
          [ (localStoreDirs (depth + 1) lower) ]
        else
          [ ]
      ) params;
      dirs' = roots ++ valuesOf [
        "root"
        "state"
        "log"
        "upper-layer"
      ];
      absolute = lib.filter (lib.hasPrefix "/");
      # Under a root, store= only names the paths; state=, log= and
      # upper-layer= make no root.
      rootDirs = absolute (roots ++ valuesOf [ "root" ]);
      rooted = rootDirs != [ ];
      trimSlashes = r: if lib.hasSuffix "/" r then trimSlashes (lib.removeSuffix "/" r) else r;
      # Under a root, the store directory is ROOT/nix/store unless real=
      # puts it elsewhere: made as real='s, which Nix would chown.
      realSet = lib.any (p: p.set && p.name == "real") params;
    in
    {
      dirs = absolute dirs' ++ lib.concatMap (l: l.dirs) lowers;
      storeDirs =
        absolute (valuesOf [ "real" ] ++ lib.optionals (!rooted) (valuesOf [ "store" ]))
        ++ lib.optionals (!realSet) (map (r: "${trimSlashes r}/nix/store") rootDirs)
        ++ lib.concatMap (l: l.storeDirs) lowers;
    };
  # local?root=ROOT (and auto, local-overlay with a query) is a local
  # store too, as the worker's check reads it.
  localStores = map (localStoreDirs 0) (
    lib.filter (
      u:
      lib.hasPrefix "/" u
      || lib.hasPrefix "local:" u
      || lib.hasPrefix "local-overlay:" u
      || lib.elem (builtins.head (lib.splitString "?" u)) [
        ""
        "auto"
        "local"
        "local-overlay"
      ]
    ) storeUris
  );
  localStoreStoreDirs = lib.unique (lib.concatMap (l: l.storeDirs) localStores);
  # Nix's build users' group, which the store directories above get.
  buildGroup = config.nix.settings.build-users-group or "nixbld";
  writablePaths = lib.unique (
    lib.optional (queueDir != defaultQueueDir) queueDir
    ++ lib.optional (logFile != "") (dirOf logFile)
    ++ fileStoreDirs
    ++ lib.concatMap (l: l.dirs) localStores
    ++ localStoreStoreDirs
    ++ lib.optional (metricsFile != "") (dirOf metricsFile)
  );

  # node exporter's textfile directory, when the node exporter is on and
  # its flags name one (--collector.textfile.directory=DIR, or the flag
  # and DIR as two words).
  nodeExporter = config.services.prometheus.exporters.node or { };
  textfileFlag = "--collector.textfile.directory";
  nodeFlags = nodeExporter.extraFlags or [ ];
  textfileDirs =
    lib.concatLists (
      lib.imap0 (
        i: f:
        if lib.hasPrefix "${textfileFlag}=" f then
          [ (lib.removePrefix "${textfileFlag}=" f) ]
        else if f == textfileFlag && i + 1 < lib.length nodeFlags then
          [ (lib.elemAt nodeFlags (i + 1)) ]
        else
          [ ]
      ) nodeFlags
    );
  nodeTextfileDir =
    if (nodeExporter.enable or false) && textfileDirs != [ ] then lib.last textfileDirs else null;
  metricsFile = toString (cfg.settings.metrics.file or "");

  # A path as a tmpfiles.d line and ReadWritePaths= take it: quoted, so
  # that a space does not end it, with '%' doubled, so that it is not a
  # specifier (%h: root's home). Both read "\\" and "\"" in quotes.
  quotePath = p: ''"${lib.replaceStrings [ "\\" "\"" "%" ] [ "\\\\" "\\\"" "%%" ] p}"'';
in
{
  imports = [
    (import ./shared-options.nix {
      path = [
        "services"
        "cachix-filter-hook"
      ];
      enableText = "cachix-filter-hook as Nix's post-build-hook, with its queue worker";
      inherit configPath;
      storeExample = "file:///var/cache/nix";
      settingsExample = ''
        {
          cache = "mycache";
          allow = [ "*" ];
          deny = [ "*-doc" "nixos-system-*" ];
          cachix.push_args = [ "-j" "8" ];
          queue.retry_max = "30m";
          target = [ { cache = "work"; allow = [ "openc910-*" ]; } ];
        }
      '';
      tokenExample = "/run/secrets/cachix-token";
      activation = {
        when = "`nixos-rebuild switch` (and `test`)";
        root = "$systemConfig";
        pin = "{host}-system";
      };
      profile = {
        name = "system";
        option = [
          "system"
          "extraDependencies"
        ];
        text = "the system's closure (system.extraDependencies)";
      };
    })
  ];

  options.services.cachix-filter-hook.metrics = {
    nodeExporterTextfile = lib.mkOption {
      type = lib.types.bool;
      default = nodeTextfileDir != null;
      defaultText = lib.literalMD "whether `services.prometheus.exporters.node` is enabled with `--collector.textfile.directory` in its `extraFlags`";
      description = ''
        Write the queue's metrics (Prometheus' text format: pending,
        failing and dropped entries per target, paths pushed and dropped,
        pusher calls and their durations, pins, whether a worker runs) as
        `cachix_filter_hook.prom` into node exporter's textfile directory
        (`metrics.directory`), where its textfile collector serves them.
        Sets `settings.metrics.file`. The worker (root) rewrites it each
        round, mode 0644; the directory is made root's, mode 0755, since
        root refuses to write into one another user can change, and node
        exporter only reads it. See README, "Fleets", for what to alert on.
      '';
    };
    directory = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = nodeTextfileDir;
      defaultText = lib.literalMD "the directory of node exporter's `--collector.textfile.directory` flag";
      example = "/var/lib/prometheus-node-exporter-text-files";
      description = "node exporter's textfile directory, for `metrics.nodeExporterTextfile`.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !cfg.metrics.nodeExporterTextfile || cfg.metrics.directory != null;
        message = "services.cachix-filter-hook.metrics.nodeExporterTextfile: no directory: set metrics.directory, or --collector.textfile.directory in services.prometheus.exporters.node.extraFlags.";
      }
      {
        # NixOS writes nix.extraOptions after nix.settings into nix.conf,
        # and Nix takes a setting's last line: a hook there would replace
        # this one without a word. (Another module's
        # nix.settings.post-build-hook is a conflict the module system
        # reports itself.)
        assertion = !lib.any (l: builtins.match "[[:space:]]*post-build-hook[[:space:]]*=.*" l != null) (
          lib.splitString "\n" (config.nix.extraOptions or "")
        );
        message = "services.cachix-filter-hook: nix.extraOptions sets post-build-hook, which nix.conf takes over this module's (nix.settings.post-build-hook): remove that line, or disable this module.";
      }
    ];

    services.cachix-filter-hook.settings.metrics.file = mkIf (
      cfg.metrics.nodeExporterTextfile && cfg.metrics.directory != null
    ) (lib.mkDefault "${cfg.metrics.directory}/cachix_filter_hook.prom");

    # Nix runs it with no arguments after every local build, as root under
    # the daemon. It exits 0 whatever happens and returns in milliseconds.
    nix.settings.post-build-hook = exe;

    environment.systemPackages = [ cfg.package ];

    environment.etc."cachix-filter-hook/hook.conf".source = configFile;

    # The queue, and the other directories the worker service may write
    # (ReadWritePaths needs them to exist when it starts).
    systemd.tmpfiles.rules = [
      "d ${quotePath queueDir} 0700 root root -"
    ]
    ++ map (d: "d ${quotePath d} 0755 root root -") (
      lib.subtractLists localStoreStoreDirs (lib.remove queueDir writablePaths)
    )
    ++ map (
      d: if buildGroup != "" then "d ${quotePath d} 1775 root ${buildGroup} -" else "d ${quotePath d} 0755 root root -"
    ) (lib.remove queueDir localStoreStoreDirs);

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
      environment = {
        # Nix as root would open the store directly, which ProtectSystem
        # makes read-only: it goes through the daemon, as users' Nix does.
        NIX_REMOTE = "daemon";
        # Root's home is read-only here (ProtectHome), and nix copy to an
        # s3:// or http(s):// store fails when it cannot write its cache
        # of the store's narinfos (~/.cache/nix/binary-cache-v6.sqlite:
        # "attempt to write a readonly database", or "creating directory"
        # when there is none yet): it gets CacheDirectory instead.
        XDG_CACHE_HOME = "/var/cache/cachix-filter-hook";
      };
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
        # XDG_CACHE_HOME above. 0700: the narinfo cache names the stores.
        CacheDirectory = "cachix-filter-hook";
        CacheDirectoryMode = "0700";
        # "-": no error if it is missing (the daemon creates it).
        ReadWritePaths = map quotePath writablePaths ++ [ "-/nix/var/nix/daemon-socket" ];
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
        # Root without capabilities: everything the worker opens is root's
        # (hook.conf, the token file, the queue, cachix.dhall; the
        # directories of file:// caches, which tmpfiles gives to root),
        # and nix-daemon trusts root by its uid, not by a capability. Nix's
        # own unshare (a private mount namespace for a local store) fails
        # and is skipped, as with RestrictNamespaces; it is not needed
        # with NIX_REMOTE=daemon.
        CapabilityBoundingSet = "";
        # @system-service without what needs privileges (@privileged: chown,
        # setuid, mount, ...) or changes resources (@resources:
        # setpriority, sched_setaffinity, ...). Measured with strace on a
        # worker pushing through nix copy and the cachix stand-in: every
        # call it makes is in this set; Go, glibc and Nix raise their limits
        # with prlimit64, which is in @default. EPERM rather than killing
        # the process: a call of cachix's (a Haskell program that nothing
        # here runs) that the filter denies is then an error cachix
        # reports, not a worker that dies with SIGSYS mid-push.
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
          "~@resources"
        ];
        SystemCallErrorNumber = "EPERM";
        # Other users' processes are hidden from /proc; the worker reads
        # only its own (/proc/self/fd).
        ProtectProc = "invisible";
        # Nothing here uses System V IPC or POSIX message queues.
        PrivateIPC = true;

        # Left out, with why:
        # - ProcSubset = "pid": Nix's garbage collector (Boehm) counts the
        #   CPUs from /proc/stat at every start of nix copy (seen with
        #   strace); without it, each push warns and marks with one thread.
        # - UMask: nix copy to a file:// store writes the cache's files
        #   with the worker's umask, and a web server must read them. The
        #   queue's files have modes of their own.
        # - MemoryDenyWriteExecute: cachix is a Haskell program (GHC's
        #   runtime may map executable memory for FFI callbacks), and
        #   nothing here runs it under that restriction.
        # - PrivateUsers: root in a user namespace has no capabilities
        #   outside it, which CapabilityBoundingSet already ensures; how
        #   nix-daemon treats a client across one is not tested here.
        # - RemoveIPC: no effect on root's services.
        # - PrivateNetwork, IPAddressDeny: cachix and remote stores need
        #   the network. DynamicUser: the worker reads root's config and
        #   token. InaccessiblePaths: nix copy needs the daemon's socket.
      };
    };

    # Queue the new system's closure on switch/test. NIXOS_ACTION is unset
    # when the activation script runs at boot, before the network is up:
    # nothing is queued then (the worker service resumes the queue anyway).
    # `push` returns once the paths are queued; timeout bounds even that, and
    # `|| true` keeps any failure from failing the switch.
    system.activationScripts.cachix-filter-hook = mkIf cfg.pushOnActivation.enable {
      deps = [ "etc" ];
      text = ''
        case "''${NIXOS_ACTION:-}" in
          switch | test)
            ${lib.getExe' pkgs.coreutils "timeout"} 60 ${exe} --config ${configPath} ${lib.escapeShellArgs cfg.activationPushArgs} "$systemConfig" </dev/null || true
            ;;
        esac
      '';
    };
  };
}
