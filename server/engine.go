package server

import (
	"context"
	"time"

	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Engine is what the service needs of an engine: the log and the store
// the ledger admits writes into, the tlog-tiles resources, and the
// engine's life. Package embedded (Tessera and SQLite in the data folder)
// and package trillian (a Trillian tree and PostgreSQL) implement it;
// cmd/undersigned-server picks one and hands it to [New] through
// [Config.Engine].
//
// The engine owns what it opened: the service closes it with Close, never
// its log or its store. The engine also decides what is published: the
// service serves, and puts into receipts, only the checkpoints its log
// publishes, so an engine that has its checkpoints cosigned by witnesses
// publishes a checkpoint once its cosignatures meet the policy.
type Engine interface {
	// Name is the engine's name, which GetLogInfo reports: "embedded" or
	// "trillian".
	Name() string
	// Log is the Merkle log. Its Healthy says whether writes can go on.
	Log() ledger.Log
	// Store keeps everything beside the log: the admitted writes, the
	// disclosures, the indexes, and the API tokens (Store().Tokens()).
	Store() ledger.Store
	// ReadTile and ReadEntryBundle return a resource of the tlog-tiles
	// API: a full one when p is 0, else the partial one of width p. One
	// that does not exist is an error wrapping fs.ErrNotExist. The service
	// serves only what a published checkpoint covers.
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
	// SharedLetterLimit returns the per-letter rate limit of the writes
	// that need no token, kept where every server of the log shares it: a
	// function that takes one token from a letter's bucket (refilled at
	// rate tokens a second, up to burst), returning 0, or the wait before
	// one will be there. It returns nil when one server serves the log,
	// which then keeps the limit itself.
	SharedLetterLimit() func(ctx context.Context, letterID string, rate float64, burst int) (time.Duration, error)
	// Start is called once the ledger has reconciled the store with the
	// log, before anything is served: the engine checks there what needs
	// the admitted writes appended again first. An error means the server
	// must not serve.
	Start(ctx context.Context) error
	// Close stops the log and closes the store and everything else the
	// engine opened. The ledger is closed first.
	Close(ctx context.Context) error
}

// OpenEngine opens an engine on a data folder, whose keys it signs with.
type OpenEngine func(ctx context.Context, folder *datadir.Folder) (Engine, error)
