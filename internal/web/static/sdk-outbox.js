// sdk-outbox.js: the relays the browser SDK's Client sent and the server has not answered yet
// (part of switchboard.js). Every relay goes with the id "r<n>" and stays here until its ack or
// error: after a resumed welcome the client sends the unanswered ones again, in order, with
// the same id and "retry":true, and the server relays none of them twice
// (docs/design/issue-14.md §1). Relays to a peer expected back after a server restart that
// meet unknown-target are held per peer until it is back.

/** Bound on relays waiting for an answer (while the socket is down they all wait). */
export const MAX_RELAYS = 1000;
/** Bound on relays held for one peer not back yet. */
export const MAX_HELD = 256;

/**
 * @typedef {Object} Relay
 * @property {number} n
 * @property {Object<string, any>} frame the relay without its id
 * @property {() => void} resolve
 * @property {(e: Error) => void} reject
 */

/** A relay dropped because the pair it was for is gone (not worth reporting). */
export class RelayDropped extends Error {
  constructor() { super('switchboard: relay dropped: its pair is gone'); }
}

export class Outbox {
  constructor() {
    /** @private */ this._n = 0;
    /** Relays not answered yet, in the order sent. @type {Relay[]} */
    this.queue = [];
    /** Per peer expected back, relays that met unknown-target. @type {Map<string, Relay[]>} */
    this.held = new Map();
    /** Per peer back from pending, the first n sent after it came back. @type {Map<string, number>} */
    this.backAt = new Map();
  }

  /** The next relay's number. @returns {number} */
  get next() { return this._n + 1; }

  /**
   * Queues a relay; throws when too many wait.
   * @param {Object<string, any>} frame @param {() => void} resolve @param {(e: Error) => void} reject
   * @returns {Relay}
   */
  add(frame, resolve, reject) {
    if (this.queue.length >= MAX_RELAYS) throw new Error('switchboard: too many relays waiting for the server');
    /** @type {Relay} */
    const r = { n: ++this._n, frame, resolve, reject };
    this.queue.push(r);
    return r;
  }

  /** The relay as sent. @param {Relay} r @param {boolean} retry @returns {string} */
  static text(r, retry) {
    return JSON.stringify(retry ? { ...r.frame, id: `r${r.n}`, retry: true } : { ...r.frame, id: `r${r.n}` });
  }

  /**
   * Takes relay id and every earlier one (the server answers in order) out of the queue;
   * earlier ones are resolved. Returns relay id, or null if it is not one of ours.
   * @param {any} id @returns {Relay|null}
   */
  answered(id) {
    const m = typeof id === 'string' && /^r(\d+)$/.exec(id);
    if (!m) return null;
    const n = Number(m[1]);
    let i = 0;
    /** @type {Relay|null} */
    let found = null;
    for (; i < this.queue.length && this.queue[i].n <= n; i++) {
      if (this.queue[i].n === n) found = this.queue[i];
      else this.queue[i].resolve();
    }
    this.queue.splice(0, i);
    return found;
  }

  /** Fails every relay (the client closed or joined anew). @param {Error} err */
  clear(err) {
    const all = this.queue;
    for (const held of this.held.values()) all.push(...held);
    this.queue = [];
    this.held.clear();
    this.backAt.clear();
    for (const r of all) r.reject(err);
  }
}
