package nixstore

import "context"

// Closures returns the runtime closure of each root that is in the store
// (roots not in the store are absent from the result), from one
// recursive PathInfos query for all of them, each root's walked in
// memory by ClosureOf rather than by a Nix call per root.
func (n Nix) Closures(ctx context.Context, roots ...string) (map[string][]string, error) {
	return closures(ctx, n, roots)
}

// Closures is Nix.Closures through the session.
func (s *Session) Closures(ctx context.Context, roots ...string) (map[string][]string, error) {
	return closures(ctx, s, roots)
}

// Infos asks Nix for path infos: a Nix (a process a call) or a Session.
type Infos interface {
	PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]PathInfo, error)
}

func closures(ctx context.Context, src Infos, roots []string) (map[string][]string, error) {
	infos, err := src.PathInfos(ctx, true, roots...)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(roots))
	for _, root := range roots {
		if c := ClosureOf(infos, root); c != nil {
			out[root] = c
		}
	}
	return out, nil
}

// ClosureOf walks root's references in infos breadth-first: its closure,
// root first, in the order everyone who names a path of it (the worker,
// explain, push --dry-run) searches it. nil when root is not a valid path
// in infos.
func ClosureOf(infos map[string]PathInfo, root string) []string {
	if !infos[root].Valid {
		return nil
	}
	seen := map[string]bool{root: true}
	closure := []string{root}
	for i := 0; i < len(closure); i++ {
		for _, ref := range infos[closure[i]].References {
			if !seen[ref] {
				seen[ref] = true
				closure = append(closure, ref)
			}
		}
	}
	return closure
}
