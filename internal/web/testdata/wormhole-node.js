// wormhole-node.js: runs static/wormhole.wasm.gz under Node for TestWASMAgreesWithNative.
// Usage: node wormhole-node.js WASM_EXEC_JS WORMHOLE_WASM_GZ
// Reads one call a line on standard input, {"fn": NAME, "args": [...]}, calls
// globalThis.switchboardWormhole[NAME](...args) and writes its result as one JSON line.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const readline = require('readline');

require(require('path').resolve(process.argv[2])); // defines globalThis.Go
(async () => {
  const go = new Go();
  const { instance } = await WebAssembly.instantiate(zlib.gunzipSync(fs.readFileSync(process.argv[3])), go.importObject);
  go.run(instance); // runs main until it blocks: the API is set
  const api = globalThis.switchboardWormhole;
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const { fn, args } = JSON.parse(line);
    let out;
    try {
      out = typeof api[fn] === 'function' ? api[fn](...args) : api[fn];
    } catch (e) {
      out = { thrown: String(e) };
    }
    process.stdout.write(JSON.stringify(out === undefined ? null : out) + '\n');
  }
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
