# Evaluates the repository's Nix files for modules_test.go, with nixpkgs.lib
# (lib), home-manager's real modules (hm) and the stubs beside this file for
# the rest of nixpkgs. Nothing is built.
#
#   nixpkgs: a directory with lib/ -> nixpkgs.lib's lib/ and nixos/ -> ./stub/nixos
#   config:  the user's module (a function or an attribute set)
{
  nixpkgs,
  hm ? null,
  config ? { },
  # The repository whose Nix files are evaluated (a copy, in the source
  # filter test).
  repo ? ../..,
  # Packages that replace the stubs' (a real coreutils, for the tests
  # that run the activation snippets).
  pkgsOverride ? { },
}:

let
  lib = import (nixpkgs + "/lib");
  pkgs =
    import ./stub/pkgs.nix {
      inherit lib;
      path = nixpkgs;
    }
    // pkgsOverride;

  failed = eval: map (a: a.message) (lib.filter (a: !a.assertion) eval.config.assertions);

  # Each of our options, with the files that declare it, and the package
  # option's default as the manual shows it.
  options = opts: {
    # A group of options (metrics.*) counts by the files declaring its
    # options.
    declarations = lib.mapAttrs (
      _: o:
      if lib.isOption o then
        map baseNameOf o.declarations
      else
        lib.unique (lib.concatMap (x: map baseNameOf x.declarations) (lib.collect lib.isOption o))
    ) opts;
    packageDefault = opts.package.defaultText.text or null;
  };

  nixosEval = lib.evalModules {
    modules = [
      ./stub/nixos-options.nix
      (repo + "/nix/nixos-module.nix")
      config
      { _module.args.pkgs = pkgs; }
    ];
  };

  hmLib = import (hm + "/modules/lib/stdlib-extended.nix") lib;
  hmEval = hmLib.evalModules {
    modules =
      import (hm + "/modules/modules.nix") {
        inherit pkgs;
        lib = hmLib;
        check = true;
        # The nixpkgs module would import nixpkgs itself; this passes pkgs.
        useNixpkgsModule = false;
      }
      ++ [
        (repo + "/nix/home-manager-module.nix")
        config
        {
          home.username = "alice";
          home.homeDirectory = "/home/alice";
          home.stateVersion = "25.05";
        }
      ];
    class = "homeManager";
    specialArgs.modulesPath = toString (hm + "/modules");
  };
in
{
  nixos = {
    failed = failed nixosEval;
    # Separate attributes, so that a test can look at one while another
    # would throw.
    # The file as rendered, and the command of the build that checks it.
    settings = nixosEval.config.environment.etc."cachix-filter-hook/hook.conf".source.unchecked.stubValue;
    configCheck = nixosEval.config.environment.etc."cachix-filter-hook/hook.conf".source.stubCmd;
    hook = nixosEval.config.nix.settings.post-build-hook;
    service = {
      inherit (nixosEval.config.systemd.services.cachix-filter-hook-worker) serviceConfig environment;
    };
    tmpfiles = nixosEval.config.systemd.tmpfiles.rules;
    activation = nixosEval.config.system.activationScripts.cachix-filter-hook.text or null;
    options = options nixosEval.options.services.cachix-filter-hook;
    # The package lists the module puts into the system's closure.
    extraDependencies = nixosEval.config.system.extraDependencies;
  };

  hm = {
    failed = failed hmEval;
    settings = hmEval.config.xdg.configFile."cachix-filter-hook/hook.conf".source.unchecked.stubValue;
    configCheck = hmEval.config.xdg.configFile."cachix-filter-hook/hook.conf".source.stubCmd;
    # Only what our module adds: the whole list would evaluate the default
    # packages of every home-manager module, which the stubs do not have.
    packages = lib.concatMap (d: map (p: p.name) d.value) (
      lib.filter (d: lib.hasSuffix "home-manager-module.nix" d.file) hmEval.options.home.packages.definitionsWithLocations
    );
    activation = hmEval.config.home.activation.cachix-filter-hook.data or null;
    options = options hmEval.options.programs.cachix-filter-hook;
    extraDependencies = hmEval.config.home.extraDependencies;
  };

  # The package as nixpkgs' buildGoModule gets it.
  package =
    let
      p = pkgs.callPackage (repo + "/nix/package.nix") { };
    in
    {
      inherit (p) meta pname version;
      src = "${p.stubArgs.src}";
      checkPhase = p.stubArgs.checkPhase or "";
      doCheck = p.stubArgs.doCheck or false;
      offlineTestPackages = p.offlineTestPackages or [ ];
      inherit (p.stubArgs) ldflags;
      postInstall = p.stubArgs.postInstall or "";
      nativeBuildInputs = map (d: d.name) (p.stubArgs.nativeBuildInputs or [ ]);
      # What overrideAttrs { version = ...; } would build: with finalAttrs
      # the new version reaches ldflags, with `rec` it would not.
      overriddenLdflags = (p.stubOverrideAttrs { version = "9.9.9"; }).ldflags;
    };
}
