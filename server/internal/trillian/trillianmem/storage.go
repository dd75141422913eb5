package trillianmem

import (
	"context"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// logStorage adapts Trillian's memory log storage to concurrent use, which
// the SQL storages support and v1.8.0's memory storage does not:
//
//   - Read transactions hold only a shared lock, yet they write: they start
//     by cloning the tree's btree (btree.Clone writes to the tree it
//     clones) and their Commit puts the clone in place of the tree. Two
//     concurrent reads race. The adapter runs read transactions one at a
//     time, from SnapshotForTree to their Commit or Close.
//   - QueueLeaves keeps the caller's leaf in its queue and returns that same
//     leaf, which the sequencer later changes while the log server marshals
//     the response. The adapter queues a copy.
//   - QueueLeaves does not deduplicate by identity hash, which the SQL
//     storages do and undersigned relies on to queue an intent again
//     safely. The adapter remembers the identity hashes queued per tree and
//     reports a repeat as AlreadyExists, as they do.
type logStorage struct {
	storage.LogStorage

	reads sync.Mutex

	mu     sync.Mutex
	queued map[int64]map[string]bool
}

func newLogStorage(inner storage.LogStorage) *logStorage {
	return &logStorage{LogStorage: inner, queued: map[int64]map[string]bool{}}
}

// SnapshotForTree starts a read transaction, once the previous one ended.
func (s *logStorage) SnapshotForTree(ctx context.Context, tree *trillian.Tree) (storage.ReadOnlyLogTreeTX, error) {
	s.reads.Lock()
	tx, err := s.LogStorage.SnapshotForTree(ctx, tree)
	if err != nil {
		s.reads.Unlock()
		return nil, err
	}
	return &readTX{ReadOnlyLogTreeTX: tx, s: s}, nil
}

// readTX lets the next read transaction start when it ends.
type readTX struct {
	storage.ReadOnlyLogTreeTX
	s    *logStorage
	once sync.Once
}

func (t *readTX) end() { t.once.Do(t.s.reads.Unlock) }

// Commit commits the transaction and ends it.
func (t *readTX) Commit(ctx context.Context) error {
	defer t.end()
	return t.ReadOnlyLogTreeTX.Commit(ctx)
}

// Close closes the transaction and ends it.
func (t *readTX) Close() error {
	defer t.end()
	return t.ReadOnlyLogTreeTX.Close()
}

// QueueLeaves queues copies of the leaves not queued before.
func (s *logStorage) QueueLeaves(ctx context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, at time.Time) ([]*trillian.QueuedLogLeaf, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.queued[tree.GetTreeId()]
	if seen == nil {
		seen = map[string]bool{}
		s.queued[tree.GetTreeId()] = seen
	}
	out := make([]*trillian.QueuedLogLeaf, len(leaves))
	var fresh []*trillian.LogLeaf
	var where []int
	for i, l := range leaves {
		id := string(l.GetLeafIdentityHash())
		if seen[id] {
			out[i] = &trillian.QueuedLogLeaf{Leaf: l, Status: status.New(codes.AlreadyExists, "leaf already exists").Proto()}
			continue
		}
		fresh = append(fresh, proto.CloneOf(l))
		where = append(where, i)
	}
	if len(fresh) > 0 {
		res, err := s.LogStorage.QueueLeaves(ctx, tree, fresh, at)
		if err != nil {
			return nil, err
		}
		for k, i := range where {
			seen[string(leaves[i].GetLeafIdentityHash())] = true
			out[i] = &trillian.QueuedLogLeaf{Leaf: leaves[i], Status: res[k].GetStatus()}
		}
	}
	return out, nil
}
