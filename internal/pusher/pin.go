package pusher

import (
	"context"
	"fmt"
	"io"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// Pinner pins store paths in a Cachix cache.
type Pinner interface {
	// Pin runs `cachix pin CACHE NAME PATH [keep]`; out gets its output
	// as Push's does.
	Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error
}

// NewPinner returns the pinner of a Cachix target, or an error for a
// Nix-store target, which has no pins.
func NewPinner(c *config.Config, t *config.Target) (Pinner, error) {
	if t.Store != "" {
		return nil, fmt.Errorf("target %s is a Nix store (%s), which has no pins", t.Name, config.RedactURI(t.Store))
	}
	return New(c, t).(*cachixPusher), nil
}

func (p *cachixPusher) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	// The global options of push_args (-c FILE, --host): the config
	// file and server the token is for are pin's as much as push's.
	global, _ := cachixGlobalArgs(p.args)
	args := append(append(global, "pin"), keep.Args()...)
	return p.run(ctx, append(args, "--", p.cache, name, path), out)
}
