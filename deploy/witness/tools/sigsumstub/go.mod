// This module stands in for sigsum.org/sigsum-go, which the Go module
// proxy reachable here does not serve. torchwood's witnessctl imports it
// only for two values: the SHA-256 of a Sigsum log key (add-sigsum-log) and
// the root of the empty tree (add-log). See ../go.mod.
module sigsum.org/sigsum-go

go 1.26
