package nixstore

import (
	"context"
	"slices"
)

// Valid returns the paths Nix has registered as valid, in order: a path
// can exist on disk before its build is registered, or stay after a
// failed one.
func (n Nix) Valid(ctx context.Context, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	invalid, err := n.query(ctx, append([]string{"--check-validity", "--print-invalid", "--"}, paths...)...)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(paths), func(p string) bool { return slices.Contains(invalid, p) }), nil
}
