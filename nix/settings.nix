# What the NixOS and home-manager modules share: the type of `settings`
# (hook.conf as Nix values) and its rendering to TOML.
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

  # The keys naming a secret file (in [cachix], at the top level and in
  # each [[target]]). A Nix path literal there is written as the path it
  # names, as authTokenFile is: formats.toml writes the value with
  # builtins.toJSON, which would copy the file into the world-readable
  # store and name the copy.
  secretFileKeys = [
    "auth_token_file"
    "signing_key_file"
    "secret_key_file"
  ];
  secretsAsStrings =
    v:
    if builtins.isAttrs v then
      builtins.mapAttrs (
        k: x: if builtins.elem k secretFileKeys && builtins.isPath x then toString x else secretsAsStrings x
      ) v
    else if builtins.isList v then
      map secretsAsStrings v
    else
      v;
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

  generate = settings: format.generate "hook.conf" (prune (secretsAsStrings settings));
}
