package webui

// Build the verifier's WebAssembly (deterministically: no VCS stamp, paths
// trimmed, no build id, no gRPC) and copy the Go runtime's wasm_exec.js
// beside it. Run it after any change to client/receipt, client/records,
// client/signing, client/rules or client/webcheck; CI fails when the committed file is
// stale.
//go:generate sh -c "GOOS=js GOARCH=wasm go build -tags undersigned_nogrpc -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o static/verifier.wasm ./internal/wasm && go run ./internal/gzipfile static/verifier.wasm && cp \"$(go env GOROOT)/lib/wasm/wasm_exec.js\" static/wasm_exec.js && chmod 0644 static/wasm_exec.js"
