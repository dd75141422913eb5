// Package proto holds the .proto files of the undersigned API. The generated
// Go is in the undersignedv1 package beside them; regenerate it with
//
//	go generate ./proto
//
// which runs buf with the local plugins pinned in go.mod, then puts the
// build constraint "!undersigned_nogrpc" on the generated gRPC stubs: the
// browser's verifier (client/webui) is built with the tag
// undersigned_nogrpc, so that it links the records and messages of
// undersignedv1 but not gRPC. Every other build sees the whole package.
package proto

//go:generate sh -c "cd .. && go tool buf lint && go tool buf generate && f=proto/undersignedv1/service_grpc.pb.go && { printf '//go:build !undersigned_nogrpc\\n\\n'; cat $DOLLAR{f}; } > $DOLLAR{f}.tmp && mv $DOLLAR{f}.tmp $DOLLAR{f}"
