//go:build js && wasm

// Command wasm is the web page's WebAssembly: it exposes package webcheck
// to the page's script as globalThis.undersigned. It is built by
// `go generate ./client/webui` into client/webui/static/verifier.wasm.gz.
package main

import (
	"encoding/json"
	"strconv"
	"syscall/js"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/webcheck"
)

// state is what the page loaded: the log, and the endorsement being
// signed. A page is one program: these are its globals.
var state struct {
	log     *webcheck.Log
	pending *webcheck.Signed
	// policy is the server's witness policy, or nil.
	policy *policy.Policy
}

func bytesOf(v js.Value) []byte {
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

func toJS(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

func jsonOf(v any) js.Value {
	b, err := json.Marshal(v)
	if err != nil {
		return js.ValueOf(`{"error":"internal error"}`)
	}
	return js.ValueOf(string(b))
}

type failure struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func fail(err error) js.Value {
	f := failure{Error: err.Error()}
	if fe, ok := records.AsFieldError(err); ok {
		f.Field = fe.Field
	}
	return jsonOf(f)
}

// setPolicy(text) sets the witness policy (C2SP tlog-policy) that
// receipts and the log's checkpoint must meet; it returns {} or
// {"error": ...}.
func setPolicy(_ js.Value, args []js.Value) any {
	p, err := policy.Parse([]byte(args[0].String()))
	if err != nil {
		return fail(err)
	}
	state.policy = p
	return jsonOf(struct{}{})
}

// newLog(logKey, checkpointBytes) starts loading the log and returns
// {"size": N, "paths": [...], "foreign": [...]}: the entry bundles to add
// in order, and the foreign marks of each. With a witness policy, the
// checkpoint must meet it.
func newLog(_ js.Value, args []js.Value) any {
	v, err := note.NewVerifier(args[0].String())
	if err != nil {
		return fail(err)
	}
	l, err := webcheck.NewLog(v, bytesOf(args[1]))
	if err != nil {
		return fail(err)
	}
	if state.policy != nil {
		if err := l.CheckPolicy(state.policy); err != nil {
			return fail(err)
		}
	}
	state.log = l
	return jsonOf(map[string]any{"size": l.Size(), "paths": l.BundlePaths(), "foreign": l.ForeignPaths()})
}

// addBundle(bytes, foreignMarks) adds the next entry bundle and its
// foreign marks (the bytes served at the matching path of "foreign");
// completeLog() checks the whole. Both return {} or {"error": ...}.
func addBundle(_ js.Value, args []js.Value) any {
	if err := state.log.AddBundle(bytesOf(args[0]), bytesOf(args[1])); err != nil {
		return fail(err)
	}
	return jsonOf(struct{}{})
}

func completeLog(js.Value, []js.Value) any {
	if err := state.log.Complete(); err != nil {
		return fail(err)
	}
	return jsonOf(struct{}{})
}

// verify(logKey, receiptBytes) returns a webcheck.Result, checked against
// the witness policy when there is one.
func verify(_ js.Value, args []js.Value) any {
	v, err := note.NewVerifier(args[0].String())
	if err != nil {
		return jsonOf(webcheck.Result{State: webcheck.Invalid, Reason: "the page's log key: " + err.Error()})
	}
	return jsonOf(webcheck.VerifyWitnessed(v, state.policy, bytesOf(args[1]), state.log))
}

// verifyReference(origin, index (a decimal string), leafHash) returns a
// webcheck.Result for a link that names an entry instead of carrying its
// receipt (#o=ORIGIN&i=INDEX&h=LEAF).
func verifyReference(_ js.Value, args []js.Value) any {
	index, err := strconv.ParseUint(args[1].String(), 10, 64)
	if err != nil {
		return jsonOf(webcheck.Result{State: webcheck.Invalid, Reason: "the link's index is not a number"})
	}
	return jsonOf(webcheck.VerifyReference(args[0].String(), index, bytesOf(args[2]), state.log))
}

// sign({origin, letter, digest (Uint8Array), name, affiliation, country,
// private}) returns the EndorseRequest to send as a Uint8Array, or
// {"error": ...}.
func sign(_ js.Value, args []js.Value) any {
	o := args[0]
	s, err := webcheck.Sign(webcheck.SignRequest{
		Origin: o.Get("origin").String(), LetterID: o.Get("letter").String(), LetterDigest: bytesOf(o.Get("digest")),
		Name: o.Get("name").String(), Affiliation: o.Get("affiliation").String(), Country: o.Get("country").String(),
		Private: o.Get("private").Truthy(),
	})
	if err != nil {
		return fail(err)
	}
	state.pending = s
	return toJS(s.Request)
}

// complete(logKey, serverReceipt) returns {receipt, key} as Uint8Arrays:
// the receipt to keep, with the disclosure and the withdrawal secret, and
// the signer key file.
func complete(_ js.Value, args []js.Value) any {
	v, err := note.NewVerifier(args[0].String())
	if err != nil {
		return fail(err)
	}
	if state.pending == nil {
		return jsonOf(failure{Error: "nothing was signed"})
	}
	r, err := state.pending.Complete(v, bytesOf(args[1]))
	if err != nil {
		return fail(err)
	}
	out := js.Global().Get("Object").New()
	out.Set("receipt", toJS(r))
	out.Set("key", toJS(state.pending.KeyFile))
	return out
}

func main() {
	api := js.Global().Get("Object").New()
	for name, f := range map[string]func(js.Value, []js.Value) any{
		"setPolicy": setPolicy, "newLog": newLog, "addBundle": addBundle, "completeLog": completeLog,
		"verify": verify, "verifyReference": verifyReference, "sign": sign, "complete": complete,
	} {
		api.Set(name, js.FuncOf(f))
	}
	js.Global().Set("undersigned", api)
	if ready := js.Global().Get("undersignedReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}
