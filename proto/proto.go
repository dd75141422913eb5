// Package proto holds the .proto files of the undersigned API. The generated
// Go is in the undersignedv1 package beside them; regenerate it with
//
//	go generate ./proto
//
// which runs buf with the local plugins pinned in go.mod.
package proto

//go:generate sh -c "cd .. && go tool buf lint && go tool buf generate"
