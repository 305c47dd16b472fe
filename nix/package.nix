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
  stdenv,
  buildGoModule,
  installShellFiles,
}:

let
  # Top-level directories that hold nothing the build reads.
  excludedDirs = [
    "vendor"
    "build"
    "docs"
    "examples"
    "nix"
    "scripts"
  ];

  # The packages whose tests need no Nix, no network and no HOME, run in
  # checkPhase (the others build real derivations: test/, cli/'s scripts).
  # test/nixmodules checks that this list still runs without Nix.
  offlineTestPackages = import ./offline-test-packages.nix;
in
# finalAttrs rather than `rec`: an override of version (overrideAttrs)
# reaches ldflags too (buildGoModule takes a function since nixpkgs 25.05).
buildGoModule (finalAttrs: {
  pname = "cachix-filter-hook";
  version = "0.1.0";

  # Only what the build and its tests read: go.mod, go.sum, the .go files,
  # testdata/ directories, the man page (generated from the command
  # table and checked in: a test fails when it is not current) and
  # hook.conf.example (generated from the schema: internal/config's tests,
  # which checkPhase runs, compare the two). Not vendor/ (an untracked one makes
  # buildGoModule's vendor step refuse), build/, ./result, binaries, the
  # docs or the Nix files (editing those must not rebuild the binary).
  # cleanSourceWith rather than lib.fileset, which needs Nix 2.14: this
  # file is also evaluated by the tests with Debian's Nix 2.8. `go mod
  # vendor` sees the same packages as in the repository, so vendorHash
  # (computed from the repository by update-vendor-hash.sh) matches.
  src = lib.cleanSourceWith {
    name = "cachix-filter-hook-source";
    src = ../.;
    filter =
      path: type:
      let
        root = toString ../.;
        rel = lib.removePrefix (root + "/") (toString path);
        base = baseNameOf path;
        inTestdata = lib.hasInfix "/testdata/" ("/" + rel);
      in
      if type == "directory" then
        !(lib.elem rel excludedDirs) && !(lib.hasPrefix "." base)
      else if type == "regular" then
        lib.hasSuffix ".go" base
        || rel == "go.mod"
        || rel == "go.sum"
        || rel == "cachix-filter-hook.1"
        || rel == "hook.conf.example"
        || inTestdata
      else
        # Symlinks (./result) and anything else.
        false;
  };

  vendorHash = "sha256-okIsHHkdUe9tQRB2unaL4Qm9xWQklBLynTNscIxFxsY=";

  # Only the command; test/ holds end-to-end tests and the cachix stand-in.
  subPackages = [ "." ];

  # A static binary: it starts about 0.5 ms faster than a dynamically linked
  # one, and Nix runs the hook once per build.
  env.CGO_ENABLED = 0;

  ldflags = [
    "-s"
    "-w"
    "-X main.version=${finalAttrs.version}"
  ];

  # The man page, and the shell completions the binary prints (when the
  # build machine can run it: not when cross-compiling).
  nativeBuildInputs = [ installShellFiles ];
  postInstall = ''
    installManPage cachix-filter-hook.1
  ''
  + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    installShellCompletion --cmd cachix-filter-hook \
      --bash <($out/bin/cachix-filter-hook completion bash) \
      --fish <($out/bin/cachix-filter-hook completion fish) \
      --zsh <($out/bin/cachix-filter-hook completion zsh)
  '';

  # buildGoModule's default check runs the tests of subPackages only ("."
  # has none); these are the unit tests that run in the build sandbox.
  doCheck = true;
  checkPhase = ''
    runHook preCheck
    go test ${lib.concatStringsSep " " offlineTestPackages}
    runHook postCheck
  '';

  passthru = {
    inherit offlineTestPackages;
  };

  meta = {
    description = "Nix post-build-hook that pushes the store paths selected by allow/deny globs to Cachix, through a durable queue";
    longDescription = ''
      cachix-filter-hook is set as nix.conf's post-build-hook. It selects
      built store paths with allow and deny glob rules from hook.conf and
      queues them on disk; a detached worker pushes them with `cachix push`
      (or `nix copy`) and retries with back-off, across reboots.
    '';
    homepage = "https://github.com/cachix-filter-hook/cachix-filter-hook";
    license = lib.licenses.asl20;
    mainProgram = "cachix-filter-hook";
    # Linux only: the trust rule's walk opens each path component with
    # O_PATH and reads links through it, and the worker watches Nix
    # processes with pidfds; macOS has neither, and the package does not
    # build there (GOOS=darwin go build ./... fails in internal/trust).
    platforms = lib.platforms.linux;
    # nixpkgs' check-meta expects the attribute; nobody maintains this
    # package in nixpkgs yet. No changelog: the project keeps none (no
    # CHANGELOG, no tagged releases), and a URL to nothing would mislead.
    maintainers = [ ];
  };
})
