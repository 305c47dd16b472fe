# n tiny derivations, salted so that each benchmark run really builds them
# (the post-build-hook runs only for builds, not for paths already valid).
#   nix-build bench/drvs.nix --argstr salt S --arg n 100 --argstr prefix benchpkg
{ salt, n ? 100, prefix ? "benchpkg" }:
builtins.genList (i: derivation {
  name = "${prefix}-${toString i}-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo ${salt} ${toString i} > $out" ];
}) n
