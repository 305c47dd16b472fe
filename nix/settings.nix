# What the NixOS and home-manager modules share: the type of `settings`
# (hook.conf as Nix values), its rendering to TOML, and store URIs read as
# Nix reads them.
{ lib, pkgs }:

let
  inherit (lib) mkOption types;

  format = pkgs.formats.toml { };

  # TOML has no null, and hook.conf rejects keys it does not know: options
  # left at null, and tables left empty (`[cachix]` when no key in it is
  # set), are left out, so that hook.conf's own defaults apply.
  prune =
    v:
    if builtins.isAttrs v then
      lib.filterAttrs (_: x: x != null && x != { }) (builtins.mapAttrs (_: prune) v)
    else
      v;

  # A Nix path literal is written as the path it names, as authTokenFile
  # is: formats.toml writes the value with builtins.toJSON, which would
  # copy the file or directory into the world-readable store (a secret
  # file, root's private queue.dir, a store target's directory) and name
  # the copy, read-only. To copy a file on purpose: "${./file}".
  pathsAsStrings =
    v:
    if builtins.isPath v then
      toString v
    else if builtins.isAttrs v then
      builtins.mapAttrs (_: pathsAsStrings) v
    else if builtins.isList v then
      map pathsAsStrings v
    else
      v;

  hexDigits = lib.listToAttrs (
    lib.imap0 (i: c: lib.nameValuePair c i) (lib.stringToCharacters "0123456789abcdef")
    ++ lib.imap0 (i: c: lib.nameValuePair c (i + 10)) (lib.stringToCharacters "ABCDEF")
  );
in
{
  # Freeform, so that every key of hook.conf.example can be set; the
  # default target's keys are declared for their documentation.
  type =
    { storeExample }:
    types.submodule {
      freeformType = format.type;
      options = {
        cache = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "mycache";
          description = "Cachix cache of the default target. Set this or `store`, not both.";
        };
        store = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = storeExample;
          description = "Nix store URI of the default target, pushed with `nix copy`. Set this or `cache`, not both.";
        };
        allow = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          example = [ "hello-*" ];
          description = ''
            Globs selecting store paths for the default target, matched
            against the name after the hash (`hello-2.12.1`), or the whole
            path when they start with `/`. Unset or empty selects nothing;
            `[ "*" ]` selects every path.
          '';
        };
        deny = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          example = [ "*-doc" ];
          description = "Globs that keep store paths from the default target; deny wins over allow.";
        };
      };
    };

  # hook.conf, checked when it is built by the package's own `validate
  # --config-only` (which reads no other file): `settings` is freeform, so
  # a misspelt key (`denny`) would otherwise reach the hook, which refuses
  # the whole file at every build. The check needs to run the package, so
  # it is left out where the build machine cannot (cross-compiling).
  generate =
    package: settings:
    let
      unchecked = format.generate "hook.conf" (prune (pathsAsStrings settings));
    in
    if pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform then
      pkgs.runCommandLocal "hook.conf" { inherit unchecked; } ''
        ${lib.getExe package} --config "$unchecked" validate --config-only >/dev/null
        cp "$unchecked" "$out"
      ''
    else
      unchecked;

  # s with its %XX escapes decoded, as Nix reads a store URI's path and
  # its query's names and values (file:///srv/my%20cache is the directory
  # "/srv/my cache"). Bytes that are no UTF-8, and %00, stay as written:
  # a Nix string cannot hold them.
  percentDecode =
    s:
    let
      pieces = lib.splitString "%" s;
      byteOf =
        p:
        let
          hi = lib.substring 0 1 p;
          lo = lib.substring 1 1 p;
        in
        if hexDigits ? ${hi} && hexDigits ? ${lo} then hexDigits.${hi} * 16 + hexDigits.${lo} else null;
      # The text as strings, each escape as its byte (an int).
      tokens = lib.filter (x: x != "") (
        [ (lib.head pieces) ]
        ++ lib.concatMap (
          p:
          let
            b = byteOf p;
          in
          if b == null then
            [ "%${p}" ]
          else
            [
              b
              (lib.substring 2 (lib.stringLength p) p)
            ]
        ) (lib.tail pieces)
      );
      u4 = n: "\\u" + lib.fixedWidthString 4 "0" (lib.toHexString n);
      char =
        cp:
        builtins.fromJSON ''"${
          if cp < 65536 then u4 cp else u4 (55296 + (cp - 65536) / 1024) + u4 (56320 + lib.mod (cp - 65536) 1024)
        }"'';
      escaped = b: "%" + lib.fixedWidthString 2 "0" (lib.toHexString b);
      # One UTF-8 sequence from the bytes at the head of ts.
      go =
        ts:
        if ts == [ ] then
          ""
        else
          let
            t = lib.head ts;
            rest = lib.tail ts;
            n =
              if t < 128 then
                0
              else if t >= 194 && t <= 223 then
                1
              else if t >= 224 && t <= 239 then
                2
              else if t >= 240 && t <= 244 then
                3
              else
                -1;
            conts = lib.take n rest;
            cp = lib.foldl (acc: c: acc * 64 + c - 128) (
              if n == 0 then t else lib.mod t (builtins.elemAt [ 128 32 16 8 ] n)
            ) conts;
            valid =
              n >= 0
              && t != 0
              && lib.length conts == n
              && lib.all (c: builtins.isInt c && c >= 128 && c < 192) conts
              && !(n == 2 && cp < 2048)
              && !(n == 3 && (cp < 65536 || cp > 1114111))
              && !(cp >= 55296 && cp <= 57343);
          in
          if builtins.isString t then
            t + go rest
          else if valid then
            char cp + go (lib.drop n rest)
          else
            escaped t + go rest;
    in
    go tokens;
}
