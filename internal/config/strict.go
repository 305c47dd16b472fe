package config

import (
	"os"
	"strconv"
)

// StrictRequested tells the hook, once Load has failed, whether the user
// asked for strict = true anyway: then an invalid configuration must stop
// the build loop like any other failure, rather than leave every build
// unpushed with only a line in the build log.
//
// CACHIX_FILTER_HOOK_STRICT decides when set (a value that is not a
// boolean counts as true: it was set to ask for something). Else the
// config file, if it passes the trust rule (a file root refuses says
// nothing root believes, strict included): its top-level strict, read
// even when other keys are wrong, and from a `strict = true` line before
// any table when the file is not TOML at all.
func StrictRequested(flagPath string) bool {
	if s := os.Getenv(EnvName("strict")); s != "" {
		b, err := strconv.ParseBool(s)
		return err != nil || b
	}
	file, err := Find(flagPath)
	if err != nil || file == "" {
		return false
	}
	data, err := readChecked(file)
	if err != nil {
		return false
	}
	return strictInFile(file, data)
}

func strictInFile(file string, data []byte) bool {
	if raw, err := decode(file, data); err == nil {
		b, ok := raw["strict"].(bool)
		return ok && b
	}
	// Not TOML, or nested too deep for the parser: the lexer alone.
	return strictLexed(data)
}
