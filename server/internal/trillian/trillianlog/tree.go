package trillianlog

import (
	"context"
	"fmt"

	"github.com/google/trillian"
	"google.golang.org/protobuf/types/known/durationpb"
)

// CreateTree creates a tree of the given type (trillian.TreeType_LOG, or
// trillian.TreeType_PREORDERED_LOG for a migration), active, initialises
// it, and returns its id. Trillian's SQL storages keep at most 20
// characters of name.
func CreateTree(ctx context.Context, admin trillian.TrillianAdminClient, lc trillian.TrillianLogClient, treeType trillian.TreeType, name string) (int64, error) {
	tree, err := admin.CreateTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeType:        treeType,
		TreeState:       trillian.TreeState_ACTIVE,
		DisplayName:     name,
		MaxRootDuration: durationpb.New(0),
	}})
	if err != nil {
		return 0, fmt.Errorf("create a %v tree: %w", treeType, err)
	}
	if _, err := lc.InitLog(ctx, &trillian.InitLogRequest{LogId: tree.GetTreeId()}); err != nil {
		return 0, fmt.Errorf("initialise tree %d: %w", tree.GetTreeId(), err)
	}
	return tree.GetTreeId(), nil
}
