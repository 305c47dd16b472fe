# A stand-in for the parts of nixpkgs that this repository's Nix files, and
# home-manager's modules, use when they are evaluated (never built). Only
# nixpkgs.lib can be fetched on the test machines; full nixpkgs cannot, and
# it needs Nix 2.18 where Debian's is 2.8.
#
# Every package is a derivation whose builder fails: enough for the module
# system (types.package), for `nix flake check --no-build` (a .drv), and for
# string interpolation ("${pkgs.cachix}/bin/cachix"). formats.<fmt>.generate
# keeps the value it was given, so that the tests can render it themselves.
{
  lib,
  system ? builtins.currentSystem,
  # A directory laid out like nixpkgs, for the files home-manager imports
  # from pkgs.path: lib/ (nixpkgs.lib's) and nixos/modules/misc/ (the stubs
  # beside this file).
  path ? ./.,
}:

let
  fake =
    name: extra:
    derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [
        "-c"
        "echo 'stub package ${name}: evaluation only' >&2; exit 1"
      ];
    }
    // {
      inherit (builtins.parseDrvName name) version;
      meta = { };
      passthru = { };
    }
    // extra;

  # nixpkgs' pkgs.formats.{json,toml,...}.type: a JSON-like value.
  # (lib.types.path, not `path`: this file's argument would win over `with`.)
  valueType =
    with lib.types;
    nullOr (oneOf [
      bool
      int
      float
      str
      lib.types.path
      (attrsOf valueType)
      (listOf valueType)
    ])
    // {
      description = "JSON-like value";
    };

  format = fmt: _args: {
    type = valueType;
    # ini's atom type, which some home-manager modules use in options.
    lib.types.atom =
      with lib.types;
      nullOr (oneOf [
        bool
        int
        float
        str
      ]);
    # For TOML, nixpkgs writes the value as JSON and converts it with
    # json2toml; the tests convert stubValue with a Go TOML encoder.
    generate =
      name: value:
      fake name {
        stubFormat = fmt;
        stubValue = value;
      };
  };

  platform = lib.systems.elaborate system;

  self = {
    inherit lib system path;
    stdenv = {
      hostPlatform = platform;
      buildPlatform = platform;
    };
    hostPlatform = platform;
    buildPlatform = platform;

    callPackage =
      fn: args:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) self // args);

    formats = lib.genAttrs [ "toml" "json" "yaml" "ini" "keyValue" ] format;

    # Keeps its arguments (stubArgs) for the tests to look at; the source
    # is an input of the derivation, so instantiating it copies the
    # filtered source to the store as nixpkgs' would. Like nixpkgs' (since
    # 25.05) it takes an attribute set or a function of the final
    # attributes (finalAttrs); stubOverrideAttrs returns the arguments as
    # overrideAttrs would make them, so that a test can see an override
    # reach the attributes derived from it.
    #
    # As nixpkgs' check-meta (without allowUnsupportedSystem), a package
    # whose meta.platforms leaves this system out throws when its drvPath
    # or outPath is asked for: `nix flake check` fails on it.
    buildGoModule =
      argsOrFn:
      let
        fixArgs = extra: lib.fix (final: lib.toFunction argsOrFn final // extra);
        args = fixArgs { };
        name = "${args.pname}-${args.version}";
        drv = derivation {
          inherit name system;
          builder = "/bin/sh";
          args = [
            "-c"
            "exit 1"
          ];
          inherit (args) src;
        };
        unsupported = throw "Package ‘${name}’ is not available on the requested hostPlatform ${system} (meta.platforms)";
      in
      (
        if lib.meta.availableOn platform { meta = args.meta or { }; } then
          drv
        else
          drv
          // {
            drvPath = unsupported;
            outPath = unsupported;
          }
      )
      // {
        inherit (args) pname version;
        meta = args.meta or { };
        passthru = args.passthru or { };
        stubArgs = args;
        stubOverrideAttrs = fixArgs;
      }
      // (args.passthru or { });

    # nixpkgs' setup hook for installManPage and installShellCompletion;
    # TestPackage runs the package's postInstall with stand-ins for both.
    installShellFiles = fake "install-shell-files" { };

    cachix = fake "cachix-1.7.4" { };
    coreutils = fake "coreutils-9.5" { };
    nix = fake "nix-2.28.3" { };
    # home-manager's i18n module reads it in every configuration; its man
    # module (enabled by default) adds man to home.packages.
    glibcLocales = fake "glibc-locales-2.40" { };
    man = fake "man-db-2.13.0" { };

    writeText = name: text: fake name { inherit text; };
    writeTextFile = args: fake args.name { inherit (args) text; };
    writeShellScript = name: text: fake name { inherit text; };
    runCommand = name: _env: _cmd: fake name { };
    # Keeps its environment and command (stubCmd), for the tests to run.
    runCommandLocal = name: env: cmd: fake name (env // { stubCmd = cmd; });
    buildEnv = args: fake args.name { };
    symlinkJoin = args: fake args.name { };
  };
in
self
