package server

import "github.com/undersigned/undersigned/server/internal/datadir"

// The files of the data folder, for tests outside the server's tree; the
// server and its engines use package datadir.
const (
	LogPubFile = datadir.LogPubFile
	LogDir     = datadir.LogDir
)
