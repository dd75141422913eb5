// The page's script: it loads the verifier (WebAssembly built from
// client/webcheck) and checks receipts (#verify) or signs an open letter
// (#sign). Nothing here sends a receipt anywhere.
'use strict';
(function () {
  const byId = (id) => document.getElementById(id);
  const stringsEl = byId('strings');
  const S = stringsEl ? JSON.parse(stringsEl.textContent) : {};
  const fmt = (key, vals) => (S[key] || key).replace(/\{(\w+)\}/g, (_, k) => (vals && k in vals ? String(vals[k]) : ''));

  // The WebAssembly: fetched from the server, or in a delivery bundle read
  // from verifier.wasm.js (browsers do not fetch from file: pages).
  async function wasmBytes(staticPrefix) {
    if (globalThis.undersignedWasmGzip) {
      const raw = Uint8Array.from(atob(globalThis.undersignedWasmGzip), (c) => c.charCodeAt(0));
      const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream('gzip'));
      return new Response(stream).arrayBuffer();
    }
    const resp = await fetch(staticPrefix + 'verifier.wasm');
    if (!resp.ok) throw new Error('verifier.wasm: HTTP ' + resp.status);
    return resp.arrayBuffer();
  }

  function loadVerifier(staticPrefix) {
    return new Promise((resolve, reject) => {
      globalThis.undersignedReady = () => resolve(globalThis.undersigned);
      const go = new Go();
      wasmBytes(staticPrefix)
        .then((b) => WebAssembly.instantiate(b, go.importObject))
        .then((r) => go.run(r.instance))
        .catch(reject);
    });
  }

  const parse = (s) => JSON.parse(s);

  // Every visitor loads the same files: the latest checkpoint, every
  // entry bundle and the foreign marks of each (the entries no server of
  // the log admitted, which count for nobody), whatever receipt they
  // bring (or none).
  async function loadLog(u, tiles, key, status) {
    const cpResp = await fetch(tiles + 'checkpoint', { cache: 'no-store' });
    if (!cpResp.ok) throw new Error('checkpoint: HTTP ' + cpResp.status);
    const started = parse(u.newLog(key, new Uint8Array(await cpResp.arrayBuffer())));
    if (started.error) throw new Error(started.error);
    status.textContent = fmt('loadingLog', { size: started.size });
    const get = (p) => fetch(tiles + p).then((r) => {
      if (!r.ok) throw new Error(p + ': HTTP ' + r.status);
      return r.arrayBuffer();
    });
    const fetches = started.paths.map((p, i) => Promise.all([get(p), get(started.foreign[i])]));
    for (const f of fetches) {
      const [bundle, foreign] = await f;
      const added = parse(u.addBundle(new Uint8Array(bundle), new Uint8Array(foreign)));
      if (added.error) throw new Error(added.error);
    }
    const done = parse(u.completeLog());
    if (done.error) throw new Error(done.error);
  }

  function fromBase64URL(s) {
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
    const padded = b64 + '==='.slice((b64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function setupVerify(root) {
    const status = byId('status');
    const result = byId('result');
    const key = root.dataset.logKey;
    const tiles = root.dataset.tiles;
    let logError = null;
    const ready = loadVerifier(root.dataset.static).then(async (u) => {
      if (root.dataset.policy) {
        const set = parse(u.setPolicy(root.dataset.policy));
        if (set.error) throw new Error(set.error);
      }
      if (tiles) {
        try { await loadLog(u, tiles, key, status); } catch (e) { logError = e.message; }
      }
      status.textContent = fmt('ready');
      return u;
    });
    ready.catch((e) => { status.textContent = e.message; });

    function show(r) {
      result.hidden = false;
      result.dataset.state = r.state;
      result.querySelector('.words').textContent = fmt(r.state, { by: r.by });
      result.querySelector('.reason').textContent = r.reason ? fmt('reason', { reason: r.reason }) : '';
      const details = result.querySelector('.details');
      details.replaceChildren();
      const add = (text) => { const li = document.createElement('li'); li.textContent = text; details.append(li); };
      if (r.state !== 'invalid') {
        add(fmt('details', { index: r.index, letter: r.letter || '', size: r.checkpoint_size }));
        if (r.latest_size) add(fmt('latest', { latest: r.latest_size }));
        if (r.witnesses) add(fmt('witnesses', { witnesses: r.witnesses }));
        if (r.name) add(fmt('name', { name: r.name }));
        if (r.private) add(fmt('private'));
      }
      if (r.state === 'invalid' && r.witnesses) add(fmt('witnesses', { witnesses: r.witnesses }));
      if (r.log_broken) add(fmt('logBroken', { broken: r.log_broken }));
      if (logError) add(fmt('logError', { error: logError }));
    }

    // check verifies receipt bytes, or a reference {o, i, h} to an entry
    // of the log (a link too short to carry the whole receipt).
    async function check(bytes, ref) {
      result.hidden = true;
      status.textContent = fmt('checking');
      const u = await ready;
      const started = performance.now();
      const r = parse(ref ? u.verifyReference(ref.o, ref.i, ref.h) : u.verify(key, bytes));
      root.dataset.verifyMs = (performance.now() - started).toFixed(2);
      status.textContent = '';
      show(r);
    }
    const text = (s) => {
      let t = s.replace(/\r\n?/g, '\n');
      if (!t.endsWith('\n')) t += '\n';
      return new TextEncoder().encode(t);
    };

    byId('receipt-file').addEventListener('change', async (ev) => {
      const f = ev.target.files[0];
      if (f) check(new Uint8Array(await f.arrayBuffer()));
    });
    const zone = byId('dropzone');
    zone.addEventListener('dragover', (ev) => { ev.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', async (ev) => {
      ev.preventDefault();
      zone.classList.remove('over');
      const f = ev.dataTransfer.files[0];
      if (f) check(new Uint8Array(await f.arrayBuffer()));
    });
    byId('receipt-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      check(text(byId('receipt-text').value));
    });
    const fromHash = () => {
      const params = new URLSearchParams(location.hash.slice(1));
      if (params.has('o') && params.has('i') && params.has('h')) {
        let h;
        try { h = fromBase64URL(params.get('h')); } catch (e) {
          show({ state: 'invalid', reason: S.notReceipt });
          return;
        }
        check(null, { o: params.get('o'), i: params.get('i'), h: h });
        return;
      }
      const m = /^#r=(.*)$/.exec(location.hash);
      if (!m) return;
      let bytes;
      try { bytes = fromBase64URL(m[1]); } catch (e) {
        show({ state: 'invalid', reason: S.notReceipt });
        return;
      }
      check(bytes);
    };
    window.addEventListener('hashchange', fromHash);
    fromHash();
  }

  function download(container, name, bytes, label) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    a.download = name;
    a.textContent = label;
    container.append(a);
  }

  function setupSign(root) {
    const form = byId('sign-form');
    const status = byId('sign-status');
    const out = byId('sign-result');
    form.hidden = false;
    const key = root.dataset.logKey;
    const ready = loadVerifier(root.dataset.static);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      status.textContent = fmt('signing');
      try {
        const u = await ready;
        const digest = Uint8Array.from(root.dataset.digest.match(/../g), (h) => parseInt(h, 16));
        const req = u.sign({
          origin: root.dataset.origin, letter: root.dataset.letter, digest: digest,
          name: byId('sign-name').value, affiliation: byId('sign-affiliation').value,
          country: byId('sign-country').value, private: byId('sign-private').checked,
        });
        if (typeof req === 'string') throw new Error(parse(req).error);
        const resp = await fetch(root.dataset.endpoint, {
          method: 'POST', body: req, headers: { 'Content-Type': 'application/x-protobuf' },
        });
        const body = await resp.json();
        if (!resp.ok) throw new Error(body.error || ('HTTP ' + resp.status));
        const receipt = Uint8Array.from(atob(body.receipt), (c) => c.charCodeAt(0));
        const done = u.complete(key, receipt);
        if (typeof done === 'string') throw new Error(parse(done).error);
        status.textContent = fmt('signed', { index: body.index });
        out.dataset.index = body.index;
        download(out, root.dataset.letter + '-' + body.index + '.tlog-proof', done.receipt, fmt('downloadReceipt'));
        download(out, root.dataset.letter + '-signer.key', done.key, fmt('downloadKey'));
      } catch (e) {
        status.textContent = fmt('signError', { error: e.message });
      }
    });
  }

  const verifyRoot = byId('verify');
  if (verifyRoot) setupVerify(verifyRoot);
  const signRoot = byId('sign');
  if (signRoot) setupSign(signRoot);
})();
