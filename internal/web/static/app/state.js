// state.js: what each person's page tells the others about its media (app.js): microphone
// on or off, camera on or off, and what other modules add (share.js: presenting). The
// signaling server has no way for a client to change its own presence meta (only the server
// API can), so the state travels as a relayed message {"call":"state","mic":true,"cam":false,
// ...} through the signaling server: broadcast to the room on every change, and sent to each
// peer when it appears (a newcomer, or everyone again after this page rejoined under a new
// id). The SDK's relays are acknowledged and re-sent across a signaling reconnect, so a
// change made while reconnecting still arrives; a state is the whole state, so the last one
// received wins.

/** @typedef {import('/sdk/switchboard.js').Peer} Peer */
/** @typedef {import('/sdk/switchboard.js').Client} Client */

/**
 * A person's media state: mic and cam, plus the fields other modules set (booleans, numbers
 * or strings of at most 64 characters; at most 16 fields).
 * @typedef {Object<string, boolean|number|string>} MediaState
 */

/** The message kind, in the `call` field. */
export const STATE_MSG = 'state';

/**
 * A message's state, cleaned: only simple fields, bounded; null if it is not a state message.
 * @param {any} data @returns {MediaState|null}
 */
export function parseState(data) {
  if (!data || typeof data !== 'object' || Array.isArray(data) || data.call !== STATE_MSG) return null;
  /** @type {MediaState} */
  const s = {};
  let n = 0;
  for (const [k, v] of Object.entries(data)) {
    if (k === 'call' || k.length > 32 || ++n > 16) continue;
    if (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) s[k] = v;
    else if (typeof v === 'string') s[k] = v.slice(0, 64);
  }
  s.mic = s.mic !== false;
  s.cam = s.cam !== false;
  return s;
}

/** The media states of a call: this page's, and each remote peer's as it last said. */
export class CallState {
  /** @param {MediaState} local */
  constructor(local) {
    /** This page's state. @type {MediaState} */
    this.local = { ...local };
    /** Each remote peer's last state, by peer id. @type {Map<string, MediaState>} */
    this.remote = new Map();
    /** @private @type {Array<(peerId: string, state: MediaState, before: MediaState|undefined) => void>} */
    this._listeners = [];
    /** @private @type {Client|null} */
    this._client = null;
  }

  /** The client to broadcast through, once joined (null after leaving). @param {Client|null} c */
  attach(c) { this._client = c; }

  /**
   * Changes this page's state and tells the room.
   * @param {MediaState} patch
   */
  set(patch) {
    Object.assign(this.local, patch);
    const c = this._client;
    if (c) c.broadcast(this.message()).catch((e) => console.warn('switchboard: state:', e instanceof Error ? e.message : e));
  }

  /** The message that says this page's state. @returns {Object<string, any>} */
  message() { return { call: STATE_MSG, ...this.local }; }

  /** Tells one peer this page's state (it just appeared). @param {Peer} peer */
  hello(peer) {
    peer.send(this.message()).catch(() => { /* gone meanwhile */ });
  }

  /**
   * Takes a message from a peer; returns whether it was a state message.
   * @param {Peer} peer @param {any} data @returns {boolean}
   */
  receive(peer, data) {
    const s = parseState(data);
    if (!s) return false;
    const before = this.remote.get(peer.id);
    this.remote.set(peer.id, s);
    for (const fn of this._listeners) {
      try { fn(peer.id, s, before); } catch (e) { console.warn('switchboard: state listener:', e); }
    }
    return true;
  }

  /**
   * Calls fn with each remote peer's new state (and the one before, if any).
   * @param {(peerId: string, state: MediaState, before: MediaState|undefined) => void} fn
   */
  onChange(fn) { this._listeners.push(fn); }

  /** Moves what a peer said to its new id (it came back under another one). @param {string} from @param {string} to */
  move(from, to) {
    const s = this.remote.get(from);
    this.remote.delete(from);
    if (s && !this.remote.has(to)) this.remote.set(to, s);
  }

  /** Forgets a peer that left. @param {string} id */
  forget(id) { this.remote.delete(id); }
}
