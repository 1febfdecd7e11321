// wormhole.js: code phrases in the browser (docs/file-transfer.md, "Code phrases"), so that a
// page and `switchboard send` / `switchboard recv` understand the same code both ways.
// sendWithCode draws a code, waits in the room it names for a receiver that proves it and
// sends files; receiveWithCode takes a code, proves it to the sender in that room and
// receives. The exchange itself is internal/wormhole compiled to WebAssembly
// (/sdk/wormhole.wasm, loaded with the Go toolchain's /sdk/wasm_exec.js): the same PAKE, key
// confirmation, attempt counting (wormhole.Pair) and bind MACs as the CLI, driven here as
// cmd/switchboard drives them: relayed messages, a 20 s bound per exchange, and, once the
// transfer's data channel is open, each side's bind over the DTLS certificates' SHA-256 (the
// `a=fingerprint:sha-256` of the local and remote SDP) checked before a byte of a file moves.
// The files then go as transfer.js sends them.

import { join } from './switchboard.js';
import { LABEL, PROTOCOL, checkName, isTransferChannel, sendOverChannel, receiveOverChannel } from './transfer.js';

/** @typedef {import('./sdk-peer.js').Peer} Peer */
/** @typedef {import('./sdk-client.js').Client} Client */
/** @typedef {import('./transfer.js').Progress} Progress */
/** @typedef {import('./transfer.js').SendResult} SendResult */
/** @typedef {import('./transfer.js').ReceiveResult} ReceiveResult */
/** @typedef {import('./transfer.js').ReceivedFile} ReceivedFile */

/** How long a receiver waits for the sender of its code, by default (as `recv --wait`). */
export const DEFAULT_WAIT = 10 * 60 * 1000;
/** How many codes a sender draws when it finds their rooms in use. */
const ROOM_TRIES = 5;
/** The CLI's reconnect bound (about 45 s of attempts). */
const RECONNECT = { maxAttempts: 12 };

/**
 * What went wrong, in one line a person understands (message), and what kind of thing it is
 * (kind): bad-code, wrong-code, gave-up, sender-left, receiver-left, no-sender, binding,
 * unreachable, busy-server, aborted, transfer, error.
 */
export class CodeError extends Error {
  /** @param {string} kind @param {string} message */
  constructor(kind, message) {
    super(message);
    this.name = 'CodeError';
    /** @type {string} */ this.kind = kind;
  }
}

/** The one-line messages of the kinds the page shows as they are. */
const MESSAGES = {
  'wrong-code': 'The code is wrong: the sender did not accept it. Check it, or ask the sender for a new code.',
  'gave-up': 'Three wrong codes were tried: stopped. Start again for a new code.',
  'sender-left': 'The sender left before sending the files.',
  binding: 'The connection is not the one the code authenticated: something between the two sides (the server?) substituted it. Nothing was transferred.',
  unreachable: 'Cannot reach the Switchboard server. Check your connection and try again.',
  aborted: 'Stopped.',
};

/** @param {string} kind @param {string} [detail] */
function codeError(kind, detail) {
  return new CodeError(kind, /** @type {Record<string, string>} */ (MESSAGES)[kind] || detail || kind);
}

/** @param {string} s */
const sentence = (s) => s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.');

/**
 * @typedef {Object} WormholeAPI what internal/wormhole/wasm puts on globalThis
 * @property {number} maxWrongCodes
 * @property {number} exchangeWaitMs
 * @property {number} bindWaitMs
 * @property {(text: string) => any} parseCode
 * @property {() => any} newCode
 * @property {(role: string, code: string) => any} newPair
 * @property {(h: number, code: string) => any} setCode
 * @property {(h: number, peer: string) => any} add
 * @property {(h: number, peer: string, json: string) => any} message
 * @property {(h: number, peer: string, reason: string) => any} fail
 * @property {(h: number, peer: string) => any} left
 * @property {(h: number, peer: string) => boolean} ready
 * @property {(h: number, peer: string, path: string, local: string, remote: string) => any} bind
 * @property {(h: number, peer: string, json: string, path: string, local: string, remote: string) => any} checkBind
 * @property {(h: number) => void} close
 */

/** @type {Promise<WormholeAPI>|null} */
let loading = null;

/**
 * Loads the WebAssembly build of internal/wormhole once per page (about 1.4 MB on the wire).
 * @returns {Promise<WormholeAPI>}
 */
export function loadWormhole() {
  if (loading) return loading;
  loading = (async () => {
    const g = /** @type {any} */ (globalThis);
    if (!g.Go) await import(new URL('./wasm_exec.js', import.meta.url).href);
    const go = new g.Go();
    const res = await fetch(new URL('./wormhole.wasm', import.meta.url));
    if (!res.ok) throw new Error(`wormhole.wasm: HTTP ${res.status}`);
    const { instance } = await WebAssembly.instantiate(await res.arrayBuffer(), go.importObject);
    go.run(instance).catch((/** @type {any} */ e) => console.error('switchboard: wormhole.wasm ended:', e));
    if (!g.switchboardWormhole) throw new Error('wormhole.wasm did not start');
    return /** @type {WormholeAPI} */ (g.switchboardWormhole);
  })();
  loading.catch(() => { loading = null; }); // try again next time
  return loading;
}

/**
 * Parses a code as `switchboard recv` does ("7-gravity-lemon-orbit", any case, "-" or
 * spaces). Rejects with a CodeError (kind bad-code) saying what is wrong with it.
 * @param {string} text
 * @returns {Promise<{code: string, room: string}>}
 */
export async function parseCode(text) {
  const api = await loadWormhole();
  const r = api.parseCode(String(text));
  if (r.error) throw new CodeError('bad-code', sentence(r.error.message));
  return r;
}

/**
 * The SHA-256 fingerprints of a peer connection's DTLS certificates, as its local and remote
 * descriptions announce them (the remote one is what the browser checked the handshake
 * against).
 * @param {RTCPeerConnection} pc
 * @returns {{local: string, remote: string}}
 */
export function dtlsFingerprints(pc) {
  /** @param {RTCSessionDescription|null} d */
  const fp = (d) => {
    const m = d && /^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)\s*$/im.exec(d.sdp);
    return m ? m[1] : '';
  };
  const local = fp(pc.currentLocalDescription || pc.localDescription);
  const remote = fp(pc.currentRemoteDescription || pc.remoteDescription);
  if (!local || !remote) throw new CodeError('binding', 'The connection has no certificate to check.');
  return { local, remote };
}

/**
 * @typedef {Object} Watch the exchange with one peer
 * @property {Peer} peer
 * @property {ReturnType<typeof setTimeout>|undefined} timer
 * @property {any[]} binds the peer's bind messages, not yet checked
 * @property {() => void} wake
 * @property {Promise<void>} ready resolves once the peer proved the code, rejects when its exchange failed
 * @property {() => void} resolve
 * @property {(e: Error) => void} reject
 */

/**
 * @typedef {Object} ExchangeOptions
 * @property {(line: string) => void} [onStatus] lines for the user (a wrong code tried, ...)
 * @property {(fps: {local: string, remote: string}) => void} [alterFingerprints] tests: what a
 *   man in the middle makes this side see
 */

/**
 * One side's code exchanges with the peers of the code's room, over a wormhole.Pair (which
 * counts the attempts), as cmd/switchboard's pairAuth runs them.
 */
class Exchanges {
  /** @param {WormholeAPI} api @param {'send'|'recv'} role @param {string} code @param {ExchangeOptions} opts */
  constructor(api, role, code, opts) {
    const h = api.newPair(role, code);
    if (typeof h !== 'number') throw new CodeError('error', h.error.message);
    this.api = api;
    this.h = h;
    this.role = role;
    this.opts = opts;
    this.closed = false;
    /** @type {Set<Watch>} */
    this.watches = new Set();
    /** @type {(kind: string, message: string) => void} receiver: every sender's exchange failed */
    this.onLost = () => {};
    /** @type {() => void} sender: too many wrong codes */
    this.onGaveUp = () => {};
  }

  /**
   * Starts the exchange with peer (from onPeer); null when too many run.
   * @param {Peer} peer @returns {Watch|null}
   */
  watch(peer) {
    if (this.closed) return null;
    const st = this.api.add(this.h, peer.id);
    if (!st) return null; // as many exchanges as a side runs at once: not answered
    /** @type {Watch} */
    const w = /** @type {any} */ ({ peer, timer: undefined, binds: [], wake: () => {} });
    w.ready = new Promise((resolve, reject) => { w.resolve = resolve; w.reject = reject; });
    w.ready.catch(() => {}); // a failed exchange is news only to whoever waits for it
    w.timer = setTimeout(() => this.apply(w, this.api.fail(this.h, peer.id, 'slow')), this.api.exchangeWaitMs);
    this.watches.add(w);
    peer.onMessage = (data) => {
      if (this.closed || !data || typeof data !== 'object' || data.switchboard !== 'pake') return;
      this.apply(w, this.api.message(this.h, peer.id, JSON.stringify(data)));
    };
    peer.closed.then(() => {
      clearTimeout(w.timer);
      this.watches.delete(w);
      if (!this.closed) this.apply(w, this.api.left(this.h, peer.id));
    });
    this.apply(w, st); // a receiver's x
    return w;
  }

  /** Does what a step of the Pair says. @param {Watch} w @param {any} st */
  apply(w, st) {
    if (!st || this.closed) return;
    if (st.bind) {
      w.binds.push(st.bind);
      w.wake();
    }
    if (st.ready) { // before the reply: see wormhole.Step
      clearTimeout(w.timer);
      w.resolve();
    }
    if (st.reply) {
      const x = st.reply.pake === 'x';
      w.peer.send(st.reply).catch((/** @type {Error} */ e) => {
        if (x) this.apply(w, this.api.fail(this.h, w.peer.id, `relay: ${e.message}`)); // the exchange cannot begin
      });
    }
    if (st.error) {
      clearTimeout(w.timer);
      w.reject(new CodeError(st.error.kind, sentence(st.error.message)));
    }
    if (st.lost) this.onLost(st.lost.kind, st.lost.message);
    if (st.report) {
      this.opts.onStatus?.(sentence(st.report));
      if (st.gaveUp) this.onGaveUp();
    }
  }

  /**
   * Binds the peer's connection to the code's key: sends this side's bind over the DTLS
   * certificates and checks the peer's, waiting at most bindWaitMs. Rejects with a
   * CodeError (binding) when they differ.
   * @param {Watch} w @returns {Promise<void>}
   */
  async bind(w) {
    const fps = dtlsFingerprints(w.peer.pc);
    this.opts.alterFingerprints?.(fps);
    const m = this.api.bind(this.h, w.peer.id, 'dtls', fps.local, fps.remote);
    if (m.error) throw new CodeError(m.error.kind, sentence(m.error.message));
    try {
      await w.peer.send(m);
    } catch (e) {
      throw new CodeError('error', `Could not send the connection check: ${e instanceof Error ? e.message : e}.`);
    }
    const end = Date.now() + this.api.bindWaitMs;
    let gone = false;
    w.peer.closed.then(() => { gone = true; w.wake(); });
    for (;;) {
      const b = w.binds.shift();
      if (b) {
        if (b.path !== 'dtls') continue; // a path this side does not use
        const err = this.api.checkBind(this.h, w.peer.id, JSON.stringify(b), 'dtls', fps.local, fps.remote);
        if (err) throw codeError('binding');
        return;
      }
      if (gone) throw codeError(this.role === 'send' ? 'receiver-left' : 'sender-left', 'The other side left.');
      if (this.closed) throw codeError('aborted');
      const left = end - Date.now();
      if (left <= 0) throw new CodeError('binding', 'The other side did not confirm the connection within 15 s.');
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        w.wake = () => { clearTimeout(t); resolve(undefined); };
      });
    }
  }

  /** Ends the exchanges: nothing more is counted or reported. */
  close() {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) {
      clearTimeout(w.timer);
      w.wake();
    }
    this.api.close(this.h);
  }
}

/** @param {Client} client @returns {boolean} whether a sender is in the client's room */
function hasSender(client) {
  for (const p of client.peers.values()) if (p.meta && p.meta.role === 'send') return true;
  return false;
}

/** @param {AbortSignal|undefined} signal @returns {Promise<never>} */
function aborted(signal) {
  return new Promise((_, reject) => {
    if (!signal) return;
    if (signal.aborted) reject(codeError('aborted'));
    signal.addEventListener('abort', () => reject(codeError('aborted')), { once: true });
  });
}

/**
 * @typedef {Object} SendCodeOptions
 * @property {(code: string) => void} [onCode] the code to give the receiver, once this side is
 *   in its room
 * @property {(line: string) => void} [onStatus] what happens (a wrong code tried, the receiver
 *   connecting, ...)
 * @property {(p: Progress) => void} [onProgress]
 * @property {AbortSignal} [signal]
 * @property {string} [name] shown to the other side (default "send", as the CLI)
 * @property {(fps: {local: string, remote: string}) => void} [alterFingerprints] tests only
 */

/**
 * Sends files with a code, as `switchboard send` does: draws a code whose room has no sender
 * on the server (onCode tells it), waits there for a receiver that proves it (counting wrong
 * codes; at the third it stops with kind gave-up), connects, binds the connection and sends.
 * Resolves with one result per file once the receiver answered them all.
 * @param {string} serverWsUrl e.g. "wss://example.org/ws"
 * @param {Iterable<File>|ArrayLike<File>} files
 * @param {SendCodeOptions} [opts]
 * @returns {Promise<SendResult[]>}
 */
export async function sendWithCode(serverWsUrl, files, opts = {}) {
  const list = Array.from(files);
  if (!list.length) throw new CodeError('error', 'No files to send.');
  for (const f of list) {
    const why = checkName(f.name);
    if (why) throw new CodeError('error', `${f.name}: cannot send a file of this name (${why}).`);
  }
  const api = await loadWormhole();
  const ex = new Exchanges(api, 'send', '', opts);
  /** @type {Watch[]} */
  const proved = [];
  let wake = () => {};
  /** @type {Promise<never>} */
  const gaveUp = new Promise((_, reject) => { ex.onGaveUp = () => reject(codeError('gave-up')); });
  gaveUp.catch(() => {});
  /** @type {Client|null} */
  let client = null;
  let closedClient = () => {};
  /** @type {Promise<never>} */
  const clientGone = new Promise((_, reject) => {
    closedClient = () => reject(codeError('unreachable'));
  });
  clientGone.catch(() => {});
  const stop = aborted(opts.signal);
  stop.catch(() => {});
  try {
    let code = '';
    for (let tries = 0; !client; tries++) {
      const c = api.newCode();
      api.setCode(ex.h, c.code);
      /** @type {Client} */
      let joined;
      const attempt = { kept: false }; // the client of a room in use is closed: no news
      try {
        joined = await Promise.race([stop, join(serverWsUrl, c.room, {
          name: opts.name || 'send', meta: { role: 'send' }, reconnect: RECONNECT,
          onPeer(peer) {
            if (peer.meta && peer.meta.role === 'send') return;
            const w = ex.watch(peer);
            if (w) w.ready.then(() => { proved.push(w); wake(); }, () => {});
          },
          onClose() { if (attempt.kept) closedClient(); },
        })]);
      } catch (e) {
        if (e instanceof CodeError) throw e;
        throw codeError('unreachable');
      }
      if (!hasSender(joined)) { // a room with other peers but no sender is ours: each gets a counted guess
        attempt.kept = true;
        client = joined;
        code = c.code;
        break;
      }
      joined.close();
      if (tries + 1 === ROOM_TRIES) throw new CodeError('busy-server', `The rooms of ${ROOM_TRIES} codes in a row were in use on the server; try again.`);
    }
    opts.onCode?.(code);

    // The first receiver that proved the code and connects.
    /** @type {Watch|null} */
    let target = null;
    while (!target) {
      let w = proved.shift();
      if (!w) {
        await Promise.race([stop, gaveUp, clientGone, new Promise((resolve) => { wake = () => resolve(undefined); })]);
        continue;
      }
      const peer = w.peer;
      const failed = new Promise((resolve) => {
        const prev = peer.onConnectionState;
        peer.onConnectionState = (s) => { if (prev) prev(s); if (s === 'failed') resolve('failed'); };
      });
      const how = await Promise.race([stop, gaveUp, clientGone, peer.connected.then(() => 'up'), peer.closed.then(() => 'left'), failed]);
      if (how === 'up') target = w;
      else opts.onStatus?.(how === 'left' ? 'A receiver left before connecting.' : 'Could not connect to a receiver; still waiting.');
    }
    opts.onStatus?.('Sending…');
    const t = target;
    const ch = t.peer.createDataChannel(LABEL, { ordered: true, protocol: PROTOCOL });
    let gone = false;
    t.peer.closed.then(() => { gone = true; });
    try {
      return await sendOverChannel(ch, list, { onProgress: opts.onProgress, signal: opts.signal, gate: () => ex.bind(t) });
    } catch (e) {
      if (e instanceof CodeError) throw e;
      if (opts.signal?.aborted) throw codeError('aborted');
      const err = /** @type {Error & {code?: string}} */ (e);
      if (gone || err.code === 'closed') throw new CodeError('receiver-left', `The receiver left before the transfer finished (${err.message}).`);
      throw new CodeError('transfer', `The transfer failed: ${err.message}.`);
    }
  } finally {
    ex.close();
    if (client) client.close();
  }
}

/**
 * @typedef {Object} ReceiveCodeOptions
 * @property {(line: string) => void} [onStatus]
 * @property {(p: Progress) => void} [onProgress]
 * @property {(f: ReceivedFile) => void} [onFile] a file arrived and was verified
 * @property {AbortSignal} [signal]
 * @property {number} [wait] ms to wait for the sender to come (default DEFAULT_WAIT)
 * @property {string} [name] shown to the other side (default "recv", as the CLI)
 * @property {(fps: {local: string, remote: string}) => void} [alterFingerprints] tests only
 */

/**
 * Receives files with a code, as `switchboard recv CODE` does: joins the room the code
 * names, proves the code to each peer that says it is a sender, takes the transfer only from
 * one that proved it, binds the connection and receives. Resolves with one result per file.
 * Rejects with a CodeError: bad-code, wrong-code (the sender refused it), no-sender (none
 * within wait), sender-left, binding, unreachable, transfer.
 * @param {string} serverWsUrl
 * @param {string} codeText
 * @param {ReceiveCodeOptions} [opts]
 * @returns {Promise<ReceiveResult[]>}
 */
export async function receiveWithCode(serverWsUrl, codeText, opts = {}) {
  const { code, room } = await parseCode(codeText);
  const api = await loadWormhole();
  const ex = new Exchanges(api, 'recv', code, opts);
  /** @type {Promise<never>} */
  const lost = new Promise((_, reject) => {
    ex.onLost = (kind, message) => {
      if (kind === 'wrong-code' || kind === 'sender-left') reject(codeError(kind));
      else if (kind === 'left') reject(new CodeError('sender-left', 'The sender left before the code was checked.'));
      else reject(new CodeError(kind, sentence(message.replace(/^the other side/, 'the sender'))));
    };
  });
  lost.catch(() => {});
  /** @type {(s: {peer: Peer, result: Promise<ReceiveResult[]>}) => void} */
  let took = () => {};
  /** @type {Promise<{peer: Peer, result: Promise<ReceiveResult[]>}>} */
  const source = new Promise((resolve) => { took = resolve; });
  let taken = false;
  /** @type {Client|null} */
  let client = null;
  let closedClient = () => {};
  /** @type {Promise<never>} */
  const clientGone = new Promise((_, reject) => { closedClient = () => reject(codeError('unreachable')); });
  clientGone.catch(() => {});
  const stop = aborted(opts.signal);
  stop.catch(() => {});
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let deadline;
  try {
    try {
      client = await Promise.race([stop, join(serverWsUrl, room, {
        name: opts.name || 'recv', meta: { role: 'recv' }, reconnect: RECONNECT,
        onPeer(peer) {
          if (!(peer.meta && peer.meta.role === 'send')) return; // only a sender, once it proved the code
          const w = ex.watch(peer);
          if (!w) return;
          peer.onDataChannel = (ch) => {
            if (!isTransferChannel(ch)) return;
            if (!api.ready(ex.h, peer.id) || taken) { ch.close(); return; } // not proved, or busy with another
            taken = true;
            // At once, before anything arrives on it: nothing is read before the bind.
            const gate = ex.bind(w);
            gate.catch(() => {});
            took({ peer, result: receiveOverChannel(ch, { onProgress: opts.onProgress, onFile: opts.onFile, signal: opts.signal, gate }) });
          };
        },
        onClose() { closedClient(); },
      })]);
    } catch (e) {
      if (e instanceof CodeError) throw e;
      throw codeError('unreachable');
    }
    if (!hasSender(client)) opts.onStatus?.('No sender with this code on the server yet: it may not have started. Waiting…');
    const wait = opts.wait ?? DEFAULT_WAIT;
    const late = new Promise((_, reject) => {
      deadline = setTimeout(() => reject(new CodeError('no-sender',
        `No sender came with code ${code} within ${Math.round(wait / 60000) || 1} minute(s). Check the code, or ask for a new one.`)), wait);
    });
    const src = await Promise.race([stop, lost, clientGone, late, source]);
    clearTimeout(deadline);
    opts.onStatus?.('Receiving…');
    let gone = false;
    src.peer.closed.then(() => { gone = true; });
    try {
      return await src.result;
    } catch (e) {
      if (e instanceof CodeError) throw e;
      if (opts.signal?.aborted) throw codeError('aborted');
      const err = /** @type {Error & {code?: string}} */ (e);
      if (gone || err.code === 'closed') throw new CodeError('sender-left', `The sender left before the transfer finished (${err.message}).`);
      throw new CodeError('transfer', `The transfer failed: ${err.message}.`);
    }
  } finally {
    clearTimeout(deadline);
    ex.close();
    if (client) client.close();
  }
}
