// transfer.js: Switchboard file transfer (docs/file-transfer.md, version 1) for the browser,
// a plain ES module next to switchboard.js. It interoperates with `switchboard send` and
// `switchboard recv` (internal/transfer): one ordered, reliable data channel labelled
// "switchboard-file" with protocol "switchboard-file/1", JSON control messages, binary chunks
// of at most 64 KiB, and a SHA-256 per file.
//
// Memory stays bounded on the sending side: files are read with File.slice piece by piece,
// hashed incrementally (a small SHA-256 below: crypto.subtle has no streaming digest) and sent
// with back-pressure on bufferedAmount. The receiving side assembles a Blob per file (the
// browser may keep large Blobs on disk) and never writes anything to disk by itself.
//
// Roles: join with meta {role: "send"} or {role: "recv"} as the CLI does; `switchboard send`
// sends to the first peer that does not announce itself as a sender.

/** Data channel label of a file transfer. */
export const LABEL = 'switchboard-file';
/** Data channel protocol string of this version. */
export const PROTOCOL = 'switchboard-file/1';
/** Size of the binary messages the sender sends. */
export const CHUNK_SIZE = 64 * 1024;
/** Longest accepted file name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 250;

const READ_SIZE = 1024 * 1024; // bytes read from a File at once
const HIGH_WATER = 1024 * 1024; // pause sending above this many buffered bytes
const LOW_WATER = 256 * 1024; // resume below this
const DONE_WAIT = 5000; // ms a side waits for the other's close/done at the end
const ACK_INTERVAL = 100; // ms between a receiver's got messages, at least
const heldLimit = 1024 * 1024; // bytes a receiver keeps before its gate opens (a sender sends none)

/** A transfer failed for one file (code: bad-name, exists, size-mismatch, hash-mismatch, io, protocol, closed). */
export class TransferError extends Error {
  /** @param {string} code @param {string} message @param {string} [name] */
  constructor(code, message, name) {
    super(`switchboard-file: ${name ? name + ': ' : ''}${code}: ${message}`);
    this.name = 'TransferError';
    /** @type {string} */ this.code = code;
    /** @type {string|undefined} */ this.file = name;
  }
}

// ---------------------------------------------------------------------------------------
// SHA-256, incremental (FIPS 180-4).

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** Incremental SHA-256: update(bytes)… then hex(). */
export class SHA256 {
  constructor() {
    /** @private */ this._h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    /** @private */ this._w = new Uint32Array(64);
    /** @private */ this._buf = new Uint8Array(64);
    /** @private */ this._n = 0; // bytes in _buf
    /** @private */ this._len = 0; // total bytes
  }

  /** @param {Uint8Array} data */
  update(data) {
    let i = 0;
    this._len += data.length;
    if (this._n > 0) {
      const take = Math.min(64 - this._n, data.length);
      this._buf.set(data.subarray(0, take), this._n);
      this._n += take;
      i = take;
      if (this._n < 64) return this;
      this._block(this._buf, 0);
      this._n = 0;
    }
    for (; i + 64 <= data.length; i += 64) this._block(data, i);
    if (i < data.length) {
      this._buf.set(data.subarray(i), 0);
      this._n = data.length - i;
    }
    return this;
  }

  /** @returns {string} the digest, 64 lowercase hex digits; the hash is finished */
  hex() {
    const bits = this._len * 8;
    const pad = new Uint8Array(((this._n < 56 ? 56 : 120) - this._n) + 8);
    pad[0] = 0x80;
    const dv = new DataView(pad.buffer);
    dv.setUint32(pad.length - 8, Math.floor(bits / 0x100000000));
    dv.setUint32(pad.length - 4, bits >>> 0);
    const len = this._len;
    this.update(pad);
    this._len = len;
    let s = '';
    for (const v of this._h) s += v.toString(16).padStart(8, '0');
    return s;
  }

  /** @private @param {Uint8Array} p @param {number} off */
  _block(p, off) {
    const w = this._w, h = this._h;
    for (let t = 0; t < 16; t++) {
      const j = off + t * 4;
      w[t] = (p[j] << 24) | (p[j + 1] << 16) | (p[j + 2] << 8) | p[j + 3];
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15], b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
}

// ---------------------------------------------------------------------------------------
// Names.

/**
 * Returns why name is not acceptable as a received file's name, or "" if it is: 1–250 bytes
 * of UTF-8, no "/", "\", NUL or other control character, not "." or "..".
 * @param {string} name
 */
export function checkName(name) {
  if (typeof name !== 'string' || name === '') return 'empty';
  if (name === '.' || name === '..') return 'not a file name';
  if (/[\uD800-\uDFFF]/.test(name.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''))) return 'not UTF-8';
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) return `longer than ${MAX_NAME_BYTES} bytes`;
  if (/[/\\]/.test(name)) return 'contains a path separator';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character';
  return '';
}

/**
 * Whether a channel the remote peer opened is a file transfer this side should take.
 * @param {RTCDataChannel} ch
 */
export function isTransferChannel(ch) {
  return ch.label === LABEL && (ch.protocol === PROTOCOL || ch.protocol === '');
}

// ---------------------------------------------------------------------------------------
// Channel helpers.

/** @param {RTCDataChannel} ch @param {number} ms */
function whenOpen(ch, ms) {
  if (ch.readyState === 'open') return Promise.resolve();
  return /** @type {Promise<void>} */ (new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new TransferError('closed', `channel not open after ${ms} ms`)), ms);
    /** @param {Error} [err] */
    const done = (err) => {
      clearTimeout(timer);
      ch.removeEventListener('open', onOpen);
      ch.removeEventListener('close', onClose);
      if (err) reject(err); else resolve(undefined);
    };
    const onOpen = () => done();
    const onClose = () => done(new TransferError('closed', 'the channel closed before opening'));
    ch.addEventListener('open', onOpen);
    ch.addEventListener('close', onClose);
  }));
}

/**
 * @typedef {Object} Progress
 * @property {string} name the current file
 * @property {number} file its index, from 1
 * @property {number} files how many files (the receiver counts those started so far)
 * @property {number} bytes bytes of this file the receiver has (for a sender: what the
 *   receiver confirmed, never bytes only queued)
 * @property {number} size the file's size
 * @property {boolean} done the file is complete: received and verified (for a sender: the
 *   receiver answered ok)
 * @property {number} [sent] sender only: bytes of this file handed to the channel (≥ bytes)
 * @property {boolean} [acks] sender only: the receiver confirms bytes as they arrive; false
 *   before its first `got` and with a version 1 receiver that sends none (then bytes stays 0
 *   until done)
 */

/**
 * @typedef {Object} SendResult
 * @property {string} name
 * @property {number} size
 * @property {string} sha256
 * @property {TransferError|null} error null when the receiver confirmed the file
 */

/**
 * @typedef {Object} SendOptions
 * @property {(p: Progress) => void} [onProgress]
 * @property {AbortSignal} [signal] aborts the transfer (the channel is closed)
 * @property {number} [openTimeout] ms to wait for the peer to connect and for the channel
 *   to open, each (default 15000)
 * @property {() => Promise<void>} [gate] called once the channel is open, before anything is
 *   sent on it; the transfer waits for it, and a rejection ends it (the channel is closed):
 *   wormhole.js checks there that the connection is the one a code authenticated
 */

/**
 * Sends files to peer (a switchboard.js Peer, connected or about to be) as `switchboard send`
 * does: opens the file channel, sends each file, waits for every answer and hangs up. Resolves
 * with one result per file once the receiver answered them all; rejects only if the transfer
 * as a whole failed (the channel closed with files unanswered, a protocol error, abort).
 * It waits for peer.connected (up to openTimeout) before opening the channel, like the CLI.
 *
 * @param {{createDataChannel(label: string, init?: RTCDataChannelInit): RTCDataChannel, connected?: Promise<void>}} peer
 * @param {Iterable<File>|ArrayLike<File>} files Files or Blobs with a name
 * @param {SendOptions} [opts]
 * @returns {Promise<SendResult[]>}
 */
export async function sendFiles(peer, files, opts = {}) {
  const list = Array.from(files);
  checkFiles(list);
  if (peer.connected) { // a switchboard.js Peer: open the channel once connected, like the CLI
    const ms = opts.openTimeout ?? 15000;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    let timer;
    try {
      await Promise.race([peer.connected, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TransferError('closed', `peer not connected after ${ms} ms`)), ms);
      })]);
    } finally {
      clearTimeout(timer);
    }
  }
  const ch = peer.createDataChannel(LABEL, { ordered: true, protocol: PROTOCOL });
  return sendOverChannel(ch, list, opts);
}

/** @param {{name: string, size: number}[]} files */
function checkFiles(files) {
  for (const f of files) {
    const why = checkName(f.name);
    if (why) throw new TransferError('bad-name', why, f.name);
    if (!(Number.isSafeInteger(f.size) && f.size >= 0)) throw new TransferError('size-mismatch', 'size out of range', f.name);
  }
}

/**
 * Runs the sender's side on a channel already created (label LABEL, protocol PROTOCOL).
 * @param {RTCDataChannel} ch
 * @param {Iterable<File>|ArrayLike<File>} fileList
 * @param {SendOptions} [opts]
 * @returns {Promise<SendResult[]>}
 */
export async function sendOverChannel(ch, fileList, opts = {}) {
  const files = Array.from(fileList);
  /** @type {SendResult[]} */
  const results = files.map((f) => ({ name: f.name, size: f.size, sha256: '', error: null }));
  try {
    checkFiles(files);
  } catch (e) {
    ch.close();
    throw e;
  }
  ch.binaryType = 'arraybuffer';
  ch.bufferedAmountLowThreshold = LOW_WATER;
  let answered = 0; // results[answered] is the file the receiver is on
  let started = 0; // files whose header was sent
  const sent = files.map(() => 0); // bytes of each file handed to the channel
  let confirmed = 0; // bytes of results[answered] the receiver said it has (got)
  let acks = false; // a got arrived
  let fatal = /** @type {Error|null} */ (null);
  let gotDone = false;
  let closed = false;
  /** @type {() => void} */
  let wake = () => {};
  const poke = () => { const w = wake; wake = () => {}; w(); };
  /** Reports files[i]: what the receiver confirmed of it. @param {number} i @param {boolean} done */
  const progress = (i, done) => opts.onProgress?.({
    name: results[i].name, file: i + 1, files: files.length, bytes: done ? results[i].size : confirmed,
    size: results[i].size, done, sent: sent[i], acks,
  });
  const wait = () => new Promise((resolve) => { wake = () => resolve(undefined); });

  ch.addEventListener('message', (ev) => {
    if (typeof ev.data !== 'string') { fatal = fatal || new TransferError('protocol', 'binary message from the receiver'); ch.close(); poke(); return; }
    let m;
    try { m = JSON.parse(ev.data); } catch { m = null; }
    if (!m || typeof m.type !== 'string') { fatal = fatal || new TransferError('protocol', 'malformed message from the receiver'); ch.close(); poke(); return; }
    if (m.type === 'done') { gotDone = true; poke(); return; }
    if (m.type === 'got') {
      const why = answered >= started ? 'got while no file is pending'
        : m.name !== results[answered].name ? `got for ${JSON.stringify(m.name)} while ${JSON.stringify(results[answered].name)} is pending`
          : !Number.isSafeInteger(m.bytes) ? 'got without a valid bytes'
            : m.bytes < confirmed ? `got ${m.bytes} bytes after ${confirmed}`
              : m.bytes > sent[answered] ? `got ${m.bytes} bytes, only ${sent[answered]} sent` : '';
      if (why) { fatal = fatal || new TransferError('protocol', why); ch.close(); poke(); return; }
      confirmed = m.bytes;
      acks = true;
      progress(answered, false);
      return;
    }
    if (m.type === 'error' && m.name === undefined) {
      fatal = fatal || new TransferError(m.code || 'protocol', m.message || 'the receiver gave up');
      ch.close(); poke(); return;
    }
    if ((m.type !== 'ok' && m.type !== 'error') || answered >= results.length) {
      fatal = fatal || new TransferError('protocol', `unexpected ${m.type} message from the receiver`);
      ch.close(); poke(); return;
    }
    const i = answered++;
    const r = results[i];
    confirmed = 0;
    if (m.type === 'error') r.error = new TransferError(m.code || 'io', m.message || 'refused', r.name);
    else progress(i, true);
    if (answered < started) progress(answered, false); // the next file, already on its way
    poke();
  });
  ch.addEventListener('close', () => { closed = true; poke(); });
  ch.addEventListener('bufferedamountlow', poke);
  const onAbort = () => { fatal = fatal || new TransferError('closed', 'aborted'); ch.close(); poke(); };
  opts.signal?.addEventListener('abort', onAbort);
  const check = () => {
    if (fatal) throw fatal;
    if (closed) throw new TransferError('closed', 'the channel closed');
  };

  try {
    await whenOpen(ch, opts.openTimeout ?? 15000);
    if (opts.gate) await opts.gate();
    for (let i = 0; i < files.length; i++) {
      const f = files[i], r = results[i];
      check();
      ch.send(JSON.stringify({ type: 'file', name: r.name, size: r.size, acks: true }));
      started++;
      const h = new SHA256();
      if (answered === i) progress(i, false);
      while (sent[i] < r.size && !r.error && answered <= i) {
        const buf = new Uint8Array(await f.slice(sent[i], Math.min(sent[i] + READ_SIZE, r.size)).arrayBuffer());
        if (buf.length === 0) throw new TransferError('io', 'the file shrank while reading', r.name);
        for (let off = 0; off < buf.length; off += CHUNK_SIZE) {
          while (ch.bufferedAmount > HIGH_WATER) { check(); await wait(); }
          check();
          if (r.error) break; // refused meanwhile: end it at once
          const chunk = buf.subarray(off, Math.min(off + CHUNK_SIZE, buf.length));
          h.update(chunk);
          ch.send(chunk);
          sent[i] += chunk.length;
        }
        if (answered === i) progress(i, false);
      }
      r.sha256 = h.hex();
      ch.send(JSON.stringify({ type: 'end', sha256: r.sha256 }));
    }
    check();
    ch.send(JSON.stringify({ type: 'done' }));
    const deadline = Date.now() + 60000;
    while (!gotDone && !closed && !fatal) {
      const t = setTimeout(poke, Math.max(0, deadline - Date.now()));
      await wait();
      clearTimeout(t);
      if (Date.now() >= deadline) break;
    }
    if (fatal) throw fatal;
    if (answered < results.length) throw new TransferError('closed', `${results.length - answered} file(s) unanswered`);
    return results;
  } catch (e) {
    for (let i = answered; i < results.length; i++) results[i].error = results[i].error || /** @type {TransferError} */ (e);
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (ch.readyState !== 'closed') ch.close(); // the sender hangs up
  }
}

/**
 * @typedef {Object} ReceivedFile
 * @property {string} name
 * @property {number} size
 * @property {string} sha256 64 lowercase hex digits, verified
 * @property {Blob} blob the file's bytes
 * @property {string} url an object URL of blob (for a download link); revoke it when done
 */

/**
 * @typedef {Object} ReceiveResult
 * @property {string} name
 * @property {number} size
 * @property {ReceivedFile|null} file
 * @property {TransferError|null} error
 */

/**
 * @typedef {Object} ReceiveOptions
 * @property {(f: ReceivedFile) => void} [onFile] a file arrived and was verified
 * @property {(p: Progress) => void} [onProgress]
 * @property {(name: string, size: number) => string|void} [accept] return an error code
 *   (e.g. "exists", "io") to refuse a file; by default every well-named file is accepted
 * @property {string} [type] MIME type of the Blobs (default application/octet-stream)
 * @property {AbortSignal} [signal]
 * @property {Promise<void>} [gate] nothing the channel brings is read before it resolves (it
 *   is kept until then); a rejection ends the transfer with its error and closes the
 *   channel: wormhole.js checks there that the connection is the one a code authenticated
 */

/**
 * Receives files from peer as `switchboard recv` does: takes the first data channel the peer
 * opens with label "switchboard-file" (protocol "switchboard-file/1" or empty), closes any
 * other such channel while busy, and resolves with one result per file once the sender said
 * done and the channel closed (or a few seconds after done). Other channels are passed on to
 * the handler peer.onDataChannel had before, which is put back when the transfer ends. Call it
 * from onPeer (before the sender opens its channel). Rejects if the channel closes in the
 * middle (the error's `results` holds what was verified until then).
 *
 * @param {{onDataChannel: ((ch: RTCDataChannel) => void)|null}} peer a switchboard.js Peer
 * @param {ReceiveOptions} [opts]
 * @returns {Promise<ReceiveResult[]>}
 */
export function receiveFiles(peer, opts = {}) {
  const prev = peer.onDataChannel;
  return new Promise((resolve, reject) => {
    let taken = false;
    /** @param {RTCDataChannel} ch */
    const handler = (ch) => {
      if (!isTransferChannel(ch)) { if (prev) prev(ch); return; }
      if (taken) { ch.close(); return; } // busy with another sender
      taken = true;
      const restore = () => { if (peer.onDataChannel === handler) peer.onDataChannel = prev; };
      receiveOverChannel(ch, opts).then(
        (r) => { restore(); resolve(r); },
        (e) => { restore(); reject(e); });
    };
    peer.onDataChannel = handler;
  });
}

/**
 * Runs the receiver's side on a channel the sender opened.
 * @param {RTCDataChannel} ch
 * @param {ReceiveOptions} [opts]
 * @returns {Promise<ReceiveResult[]>}
 */
export function receiveOverChannel(ch, opts = {}) {
  ch.binaryType = 'arraybuffer';
  /** @type {ReceiveResult[]} */
  const results = [];
  /** @type {{r: ReceiveResult, index: number, rejected: boolean, got: number, parts: Uint8Array<ArrayBuffer>[], h: SHA256, acks: boolean}|null} */
  let cur = null;
  let sawDone = false;
  let lastAck = -Infinity; // performance.now() of the last got
  return new Promise((resolve, reject) => {
    let finished = false;
    /** @param {Error|null} err */
    const finish = (err) => {
      if (finished) return;
      finished = true;
      opts.signal?.removeEventListener('abort', onAbort);
      if (cur && err) { cur.parts = []; if (!cur.r.error) cur.r.error = /** @type {TransferError} */ (err); }
      if (ch.readyState !== 'closed') ch.close();
      if (err) { Object.assign(err, { results }); reject(err); } else resolve(results);
    };
    const onAbort = () => finish(new TransferError('closed', 'aborted'));
    opts.signal?.addEventListener('abort', onAbort);
    /** @param {object} m */
    const answer = (m) => { if (ch.readyState === 'open') ch.send(JSON.stringify(m)); };
    /** @param {string} why */
    const protocolError = (why) => {
      answer({ type: 'error', code: 'protocol', message: why });
      finish(new TransferError('protocol', why));
    };
    /** @param {string} code @param {string} message */
    const refuse = (code, message) => {
      const c = /** @type {NonNullable<typeof cur>} */ (cur);
      c.rejected = true;
      c.parts = [];
      c.r.error = new TransferError(code, message, c.r.name);
      answer({ type: 'error', name: c.r.name, code, message });
    };
    /** @param {boolean} done */
    const progress = (done) => {
      if (cur) opts.onProgress?.({ name: cur.r.name, file: cur.index + 1, files: results.length, bytes: cur.got, size: cur.r.size, done });
    };

    /** @param {MessageEvent} ev */
    const onMessage = (ev) => {
      if (finished) return;
      if (typeof ev.data !== 'string') {
        const b = new Uint8Array(ev.data);
        if (!cur) return protocolError('data outside a file');
        if (cur.rejected) return;
        if (b.length > cur.r.size - cur.got) return refuse('size-mismatch', `more than the announced ${cur.r.size} bytes`);
        cur.h.update(b);
        cur.parts.push(b);
        cur.got += b.length;
        progress(false);
        // The sender asked for acknowledgements: at most every ACK_INTERVAL, and the last byte.
        if (cur.acks && (cur.got === cur.r.size || performance.now() - lastAck >= ACK_INTERVAL)) {
          lastAck = performance.now();
          answer({ type: 'got', name: cur.r.name, bytes: cur.got });
        }
        return;
      }
      let m;
      try { m = JSON.parse(ev.data); } catch { m = null; }
      if (!m || typeof m !== 'object' || typeof m.type !== 'string' || m.type === '') return protocolError('a text message without a type');
      switch (m.type) {
        case 'file': {
          if (cur) return protocolError(`file before the end of ${JSON.stringify(cur.r.name)}`);
          if (typeof m.name !== 'string') return protocolError('file without a name');
          if (!Number.isSafeInteger(m.size) || m.size < 0) return protocolError(`file ${JSON.stringify(m.name)} without a valid size`);
          const r = { name: m.name, size: m.size, file: null, error: null };
          results.push(r);
          cur = { r, index: results.length - 1, rejected: false, got: 0, parts: [], h: new SHA256(), acks: m.acks === true };
          const why = checkName(m.name);
          if (why) return refuse('bad-name', `bad file name ${JSON.stringify(m.name)}: ${why}`);
          const code = opts.accept?.(m.name, m.size);
          if (code) return refuse(code, `${m.name}: refused`);
          progress(false);
          return;
        }
        case 'end': {
          if (!cur) return protocolError('end outside a file');
          const c = cur;
          cur = null;
          if (c.rejected) return;
          if (c.got !== c.r.size) { cur = c; refuse('size-mismatch', `${c.got} bytes arrived, ${c.r.size} announced`); cur = null; return; }
          const want = typeof m.sha256 === 'string' ? m.sha256.toLowerCase() : '';
          const got = c.h.hex();
          if (!/^[0-9a-f]{64}$/.test(want) || want !== got) {
            cur = c; refuse('hash-mismatch', `sha256 of the data is ${got}, announced ${m.sha256}`); cur = null; return;
          }
          const blob = new Blob(c.parts, { type: opts.type || 'application/octet-stream' });
          c.parts = [];
          /** @type {ReceivedFile} */
          const f = { name: c.r.name, size: c.r.size, sha256: got, blob, url: URL.createObjectURL(blob) };
          c.r.file = f;
          cur = c; progress(true); cur = null;
          answer({ type: 'ok', name: c.r.name });
          opts.onFile?.(f);
          return;
        }
        case 'done': {
          if (cur) return protocolError(`done in the middle of ${JSON.stringify(cur.r.name)}`);
          sawDone = true;
          answer({ type: 'done' });
          setTimeout(() => finish(null), DONE_WAIT); // the sender hangs up; do not wait forever
          return;
        }
      }
      return protocolError(`unexpected ${JSON.stringify(m.type)} message`);
    };
    const onClose = () => {
      if (sawDone) finish(null);
      else finish(new TransferError('closed', 'the channel closed before the sender was done'));
    };
    if (!opts.gate) {
      ch.onmessage = onMessage;
      ch.onclose = onClose;
      if (ch.readyState === 'closed') onClose();
      return;
    }
    // Until the gate opens, what arrives is kept (at most heldLimit: a sender sends nothing
    // before the binds are checked), the channel's end too, and read after it.
    /** @type {MessageEvent[]} */
    let held = [], heldBytes = 0;
    let closedMeanwhile = ch.readyState === 'closed';
    ch.onmessage = (ev) => {
      if (finished) return;
      heldBytes += typeof ev.data === 'string' ? ev.data.length : (ev.data.byteLength ?? ev.data.size ?? 0);
      if (heldBytes > heldLimit) {
        held = [];
        ch.onmessage = null;
        protocolError(`the sender sent more than ${heldLimit} bytes before the connection was checked`);
        return;
      }
      held.push(ev);
    };
    ch.onclose = () => { closedMeanwhile = true; };
    opts.gate.then(() => {
      if (finished) return;
      const evs = held;
      held = [];
      ch.onmessage = onMessage;
      ch.onclose = onClose;
      for (const ev of evs) onMessage(ev);
      if (closedMeanwhile || ch.readyState === 'closed') onClose();
    }, (err) => {
      held = [];
      finish(err instanceof Error ? err : new Error(String(err)));
    });
  });
}
