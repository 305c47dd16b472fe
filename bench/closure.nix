# A root whose runtime closure is n builtins.toFile files, nothing built:
#   nix-instantiate --eval --read-write-mode bench/closure.nix --arg n 10000 --argstr tag v1
{ n ? 10000, tag ? "v1" }:
let
  files = builtins.genList (i: builtins.toFile "benchclos-${toString i}-${tag}" "${tag} ${toString i}\n") (n - 1);
in
builtins.toFile "benchclos-root-${toString n}-${tag}" (builtins.concatStringsSep "\n" files)
