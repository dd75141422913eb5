// Package client is the Go library for undersigned: it dials a server,
// pins the log's key by origin, makes the writes and returns their
// receipts, and verifies receipts offline and online.
//
// Signatures, commitments and the rules of the format are in the records
// package; receipts are read and checked offline by the receipt package.
// This package adds what needs the network or the user's files: key
// pinning (a known_logs file, like SSH's known_hosts), completing receipts
// with what only the client knows (a private disclosure, the withdrawal
// secret), and checking a receipt against the log as it is now.
package client
