package trillianlog

import (
	"context"
	"fmt"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// QueueLeaf queues data in the tree, its identity hash the SHA-256 of
// data ([IdentityHash]). A copy already queued or integrated is not an
// error.
func QueueLeaf(ctx context.Context, client trillian.TrillianLogClient, treeID int64, data []byte) error {
	resp, err := client.QueueLeaf(ctx, &trillian.QueueLeafRequest{
		LogId: treeID,
		Leaf:  &trillian.LogLeaf{LeafValue: data, LeafIdentityHash: IdentityHash(data)},
	})
	if err != nil {
		return fmt.Errorf("queue leaf: %w", err)
	}
	if st := resp.GetQueuedLeaf().GetStatus(); st != nil {
		if c := codes.Code(st.GetCode()); c != codes.OK && c != codes.AlreadyExists {
			return fmt.Errorf("queue leaf: %w", status.ErrorProto(st))
		}
	}
	return nil
}

// LatestRoot returns the tree's latest size and root hash.
func LatestRoot(ctx context.Context, client trillian.TrillianLogClient, treeID int64) (uint64, []byte, error) {
	resp, err := client.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: treeID})
	if err != nil {
		return 0, nil, fmt.Errorf("latest root: %w", err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return 0, nil, fmt.Errorf("latest root: %w", err)
	}
	return root.TreeSize, root.RootHash, nil
}

// ReadLeaves returns the values of the integrated leaves [start, end) of
// the tree, whatever their identity hashes.
func ReadLeaves(ctx context.Context, client trillian.TrillianLogClient, treeID int64, start, end uint64) ([][]byte, error) {
	out := make([][]byte, 0, end-start)
	for next := start; next < end; {
		resp, err := client.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
			LogId: treeID, StartIndex: int64(next), Count: int64(min(end-next, 1024)),
		})
		if err != nil {
			return nil, fmt.Errorf("read leaves [%d, %d): %w", next, end, err)
		}
		if len(resp.GetLeaves()) == 0 {
			return nil, fmt.Errorf("read leaves [%d, %d): Trillian returned none", next, end)
		}
		for _, leaf := range resp.GetLeaves() {
			if next == end {
				break
			}
			if uint64(leaf.GetLeafIndex()) != next {
				return nil, fmt.Errorf("read leaves: got index %d, want %d", leaf.GetLeafIndex(), next)
			}
			out = append(out, leaf.GetLeafValue())
			next++
		}
	}
	return out, nil
}

// PrefixRange returns the compact range of the first size entries of the
// tree, from which the root of any larger tree follows once its other
// entries are appended: from the tile builder's stored state when it is
// at most size, and the entries after it read from Trillian.
func PrefixRange(ctx context.Context, client trillian.TrillianLogClient, treeID int64, tiles TileStore, size uint64) (*compact.Range, error) {
	rng := rangeFactory.NewEmptyRange(0)
	if at, state, err := tiles.TileState(ctx); err == nil && at <= size {
		if b, err := restoreBuilder(at, state); err == nil {
			rng = b.rng
		}
	}
	for rng.End() < size {
		leaves, err := ReadLeaves(ctx, client, treeID, rng.End(), min(size, rng.End()+1024))
		if err != nil {
			return nil, err
		}
		for _, leaf := range leaves {
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
				return nil, err
			}
		}
	}
	return rng, nil
}
