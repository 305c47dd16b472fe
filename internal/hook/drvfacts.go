package hook

import (
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// builtDrv is what the hook read from DRV_PATH's .drv file.
type builtDrv struct {
	*nixstore.Drv
	path    string
	hasCA   bool            // an output has no path yet (content-addressed)
	outputs map[string]bool // Outputs, for lookups: a derivation may have 100,000
}

// readDrv reads DRV_PATH's .drv when the hook needs it: for the outputs
// when OUT_PATHS is empty (Nix 2.8), or for allowSubstitutes when a target
// skips unsubstitutable paths. It is a file read, not a Nix command: the
// hook's path gains no exec. nil when not needed or not readable (then the
// outputs count as substitutable, and the caller asks Nix for them).
func readDrv(cfg *config.Config, env Env, forOutputs bool) *builtDrv {
	if env.DrvPath == "" || !forOutputs && !policy.NeedsOf(cfg).Subst {
		return nil
	}
	if _, err := storepath.Parse(storepath.StoreDir(), env.DrvPath); err != nil || !strings.HasSuffix(env.DrvPath, ".drv") {
		return nil
	}
	d, err := nixstore.ReadDrv(env.DrvPath)
	if err != nil {
		return nil
	}
	b := &builtDrv{Drv: d, path: env.DrvPath, outputs: make(map[string]bool, len(d.Outputs))}
	for _, o := range d.Outputs {
		b.hasCA = b.hasCA || o == ""
		b.outputs[o] = true
	}
	return b
}

// facts are the facts of the derivation's outputs: whether it allows
// substitutes. Other paths (and a nil builtDrv) have none.
func (b *builtDrv) facts(path string) *policy.Facts {
	if b == nil || !b.outputs[path] {
		return nil
	}
	return &policy.Facts{Substitutes: policy.Subst(b.AllowSubstitutes), Deriver: b.path}
}
