// sdk-outbox.js: the relays the browser SDK's Client sent and the server has not answered yet
// (part of switchboard.js). Every relay goes with the id "r<n>" and stays here until its ack or
// error: after a resumed welcome the client sends the unanswered ones again, in order, with
// the same id and "retry":true, and the server relays none of them twice
// (docs/design/issue-14.md §1). Relays to a peer expected back after a server restart that
// meet unknown-target are held per peer until it is back, and go again with their first id.
// An ack says a relay was queued to its target, not read: the last MAX_RECENT acked ones are
// kept and go again as retries when the server says it lost its state (a restored welcome, or
// a peer restored there); the receiver drops a retry it already has (Seen).

/** Bound on relays waiting for an answer (while the socket is down they all wait). */
export const MAX_RELAYS = 1000;
/** Bound on relays held for one peer not back yet. */
export const MAX_HELD = 256;
/** How many acked relays are kept to go again (fewer than a receiver remembers, MAX_SEEN). */
export const MAX_RECENT = 128;
/** How many relay ids a receiver remembers per sender. */
export const MAX_SEEN = 512;

/**
 * @typedef {Object} Relay
 * @property {number} n
 * @property {Object<string, any>} frame the relay without its id
 * @property {() => void} resolve
 * @property {(e: Error) => void} reject
 * @property {boolean} [retry] sent again after a resume: the receiver may have the first
 * @property {boolean} [again] queued again after unknown-target: not a second time
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
    /** The last relays acked, oldest first. @type {Relay[]} */
    this.recent = [];
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
    const r = this.make(frame, resolve, reject);
    this.queue.push(r);
    return r;
  }

  /**
   * A relay with the next number, not queued (held for a peer not back yet).
   * @param {Object<string, any>} frame @param {() => void} resolve @param {(e: Error) => void} reject
   * @returns {Relay}
   */
  make(frame, resolve, reject) {
    return { n: ++this._n, frame, resolve, reject };
  }

  /**
   * Queues r again, with its id: after unknown-target for a peer now back, or as a retry.
   * @param {Relay} r @returns {Relay}
   */
  requeue(r) {
    if (this.queue.length >= MAX_RELAYS) throw new Error('switchboard: too many relays waiting for the server');
    r.again = true;
    this.queue.push(r);
    return r;
  }

  /**
   * Takes the recent acked relays to target (all of them when target is null) out of the
   * recent ones, marked as retries, oldest first.
   * @param {string|null} target @returns {Relay[]}
   */
  takeRecent(target) {
    const took = this.recent.filter((r) => target === null || r.frame.target === target);
    this.recent = this.recent.filter((r) => !(target === null || r.frame.target === target));
    for (const r of took) { r.retry = true; r.again = true; }
    return took;
  }

  /**
   * Holds r for its peer, not back yet; when too many are held for it, r is rejected (or,
   * with thrown, the error is thrown).
   * @param {Relay} r @param {boolean} thrown
   */
  hold(r, thrown) {
    const target = r.frame.target;
    const held = this.held.get(target) || [];
    if (held.length >= MAX_HELD) {
      const err = new Error(`switchboard: relay to ${target} dropped: too many held for a peer not back yet`);
      if (thrown) throw err;
      r.reject(err);
      return;
    }
    held.push(r);
    this.held.set(target, held);
  }

  /**
   * After a resumed welcome: every unanswered relay goes again as a retry, in order (after a
   * restored one, the recent acked ones first: the server that queued them is gone), except
   * those for a peer expected back (away), held until it is.
   * @param {boolean} restored @param {(target: string) => boolean} away @param {(r: Relay) => void} write
   */
  resend(restored, away, write) {
    if (restored) this.queue.unshift(...this.takeRecent(null));
    const all = this.queue;
    this.queue = [];
    for (const r of all) {
      r.retry = true;
      if (away(r.frame.target)) this.hold(r, false);
      else {
        this.queue.push(r);
        write(r);
      }
    }
  }

  /** The relay as sent. @param {Relay} r @param {boolean} retry @returns {string} */
  static text(r, retry) {
    if (retry) r.retry = true;
    return JSON.stringify(r.retry ? { ...r.frame, id: `r${r.n}`, retry: true } : { ...r.frame, id: `r${r.n}` });
  }

  /**
   * Takes relay id and every one written before it (the server answers in order) out of the
   * queue; those are resolved (and, when acked, kept among the recent ones). Returns relay id,
   * or null if it is not one of ours.
   * @param {any} id @param {boolean} acked @returns {Relay|null}
   */
  answered(id, acked) {
    const m = typeof id === 'string' && /^r(\d+)$/.exec(id);
    if (!m) return null;
    const n = Number(m[1]);
    const i = this.queue.findIndex((r) => r.n === n);
    if (i < 0) return null;
    const done = this.queue.splice(0, i + 1);
    const found = /** @type {Relay} */ (done.pop());
    for (const r of done) r.resolve();
    if (acked) {
      this.recent.push(...done, found);
      if (this.recent.length > MAX_RECENT) this.recent.splice(0, this.recent.length - MAX_RECENT);
    }
    return found;
  }

  /** Fails every relay (the client closed or joined anew). @param {Error} err */
  clear(err) {
    const all = this.queue;
    for (const held of this.held.values()) all.push(...held);
    this.queue = [];
    this.held.clear();
    this.backAt.clear();
    this.recent = [];
    for (const r of all) r.reject(err);
  }
}

/** The ids of the last relays received from each peer, to drop a retry already received. */
export class Seen {
  constructor() {
    /** @private @type {Map<string, {ids: string[], next: number}>} */
    this._by = new Map();
  }

  /**
   * Records relay f's id and tells whether f is a retry of a relay already received.
   * @param {any} f @returns {boolean}
   */
  duplicate(f) {
    if (f.id === undefined || f.id === null || typeof f.from !== 'string') return false;
    const id = JSON.stringify(f.id);
    let s = this._by.get(f.from);
    if (!s) {
      s = { ids: [], next: 0 };
      this._by.set(f.from, s);
    }
    if (f.retry === true && s.ids.includes(id)) return true;
    if (s.ids.length < MAX_SEEN) s.ids.push(id);
    else {
      s.ids[s.next] = id;
      s.next = (s.next + 1) % MAX_SEEN;
    }
    return false;
  }

  /** Forgets peer id (it left). @param {string} id */
  forget(id) { this._by.delete(id); }
}
