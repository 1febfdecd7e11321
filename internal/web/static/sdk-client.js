// sdk-client.js: the browser SDK's Client (part of switchboard.js, which re-exports it): the
// signaling socket and its frames, relays and acks, TURN credential refresh, the room's
// peers, and reconnection (resume, or a new presence).
//
// Resuming loses and repeats nothing (docs/design/issue-14.md §1): events carry the
// presence's seq (the highest received goes with the resume join as `last`; an event at or
// below it is a duplicate and dropped); relays wait in the Outbox (sdk-outbox.js) until
// answered and go again with `retry` after a resumed welcome; the welcome's `peers` are the
// room now (peers gone meanwhile are removed once the replay is over, new ones added); after a
// `restored` welcome known peers missing from it are given `resumeMs` to come back (their
// peer-joined has `resumed`) and relays to them are held; a welcome with `gap` or `restored`
// makes every pair check its negotiation (Peer._recover).

import { Peer } from './sdk-peer.js';
import { ServerError } from './sdk-errors.js';
import { FINAL_CODES, RESTART_CODE, connect, freshToken, retryDelay } from './sdk-connect.js';
import { Outbox, RelayDropped, Seen } from './sdk-outbox.js';

/** @typedef {import('./switchboard.js').JoinOptions} JoinOptions */
/** @typedef {import('./switchboard.js').PeerInfo} PeerInfo */
/** @typedef {import('./sdk-connect.js').Connection} Connection */

/** @typedef {import('./sdk-outbox.js').Relay} Relay */

/** A peer in one room of a Switchboard server. Create it with join(). */
export class Client {
  /**
   * @param {string} url
   * @param {Connection} conn
   * @param {JoinOptions} options
   */
  constructor(url, conn, options) {
    const welcome = conn.welcome;
    /** @private */ this._url = url;
    /** @private @type {WebSocket} */ this._ws = conn.ws;
    /** @internal */ this._opts = options;
    /** This client's own peer id, assigned by the server. @type {string} */
    this.id = welcome.peer;
    /** @type {string} */
    this.room = welcome.room;
    /** ICE servers used for every peer connection. @type {RTCIceServer[]} */
    this.iceServers = options.iceServers || welcome.iceServers || [];
    /** The remote peers, by id. @type {Map<string, Peer>} */
    this.peers = new Map();
    /** True while the signaling socket is being reconnected. @type {boolean} */
    this.reconnecting = false;
    /**
     * The ServerError that ended the client (a refused token on a rejoin, replaced, removed,
     * room-closed), or null. @type {ServerError|null}
     */
    this.error = null;
    /** @internal @type {string} the access token of the last new presence */ this._token = '';
    /** @private */ this._closed = false;
    /** @private */ this._seq = 0;
    /** @private @type {string} */ this._resume = welcome.resume || '';
    /** @private the highest event seq received */ this._lastSeq = 0;
    /** @private */ this._resumeMs = welcome.resumeMs || 15000;
    /** @private relays not answered yet */ this._out = new Outbox();
    /** @private ids of the relays received, per sender */ this._seen = new Seen();
    /** @private @type {Map<string, ReturnType<typeof setTimeout>>} peers a restored welcome left out */
    this._pending = new Map();
    /** @private @type {{end: number, present: Set<string>, gone: string[]}|null} */
    this._replay = null;
    /** @private @type {ReturnType<typeof setTimeout>|undefined} */ this._retryTimer = undefined;
    /** @private @type {ReturnType<typeof setTimeout>|undefined} */ this._iceTimer = undefined;
    /** @private */ this._iceGot = Date.now();
    this._attach(conn);
    this._scheduleIceRefresh();
  }

  /**
   * TURN credentials from the server expire (TURN REST usernames are "EXPIRY:PEERID"), and
   * this client makes connections to later peers with them: halfway to the earliest expiry it
   * asks the server for fresh ones (an ice-servers request). Connections that exist keep their
   * allocations; they also get the new servers for their next ICE restart.
   * @private
   */
  _scheduleIceRefresh() {
    clearTimeout(this._iceTimer);
    if (this._closed || this._opts.iceServers) return;
    let first = Infinity;
    for (const s of this.iceServers) {
      const m = typeof s.username === 'string' && /^(\d+):/.exec(s.username);
      if (m) first = Math.min(first, Number(m[1]) * 1000);
    }
    if (first === Infinity) return;
    const wait = Math.max(500, (first - this._iceGot) / 2);
    this._iceTimer = setTimeout(() => {
      if (this._closed) return;
      if (!this.reconnecting) {
        try { this._put({ type: 'ice-servers', id: `ice${++this._seq}` }); } catch (e) { this._report(null, e); }
      }
      // Asked (or away): ask again later unless the answer reschedules first.
      this._iceTimer = setTimeout(() => this._scheduleIceRefresh(), 10000);
    }, wait);
  }

  /** @private @param {RTCIceServer[]} servers */
  _setIceServers(servers) {
    if (this._opts.iceServers || !Array.isArray(servers)) return;
    this.iceServers = servers;
    this._iceGot = Date.now();
    for (const p of this.peers.values()) {
      try { p.pc.setConfiguration({ ...p.pc.getConfiguration(), iceServers: servers }); } catch (e) { this._report(p, e); }
    }
    this._scheduleIceRefresh();
  }

  /** @private @param {Connection} conn */
  _attach(conn) {
    const ws = conn.ws;
    this._ws = ws;
    ws.onmessage = (ev) => this._frame(ev.data);
    ws.onclose = (ev) => this._socketClosed(ev);
    ws.onerror = () => { /* onclose follows */ };
  }

  /**
   * Connects to the welcome's peers, then handles the frames that followed the welcome.
   * @internal @param {PeerInfo[]} peers @param {string[]} early
   */
  _start(peers, early) {
    for (const info of peers) this._addPeer(info);
    for (const raw of early) this._frame(raw);
  }

  /**
   * Relays data (any JSON value) to every other peer of the room through the server.
   * Resolves when the server has queued it.
   * @param {any} data
   * @returns {Promise<void>}
   */
  broadcast(data) {
    return this._request({ type: 'message', broadcast: true, data });
  }

  /** Leaves the room: closes every peer connection and the signaling socket. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._iceTimer);
    for (const p of this.peers.values()) p._close();
    this.peers.clear();
    this._stopPending();
    this._out.clear(new Error('switchboard: client closed'));
    if (this.reconnecting) {
      // The socket is gone already: no close event will come, so say it here.
      this.reconnecting = false;
      clearTimeout(this._retryTimer);
      if (this._opts.onClose) this._opts.onClose(new CloseEvent('close', { code: 1000, wasClean: true }));
      return;
    }
    try { this._ws.send(JSON.stringify({ type: 'leave' })); } catch { /* not open */ }
    this._ws.close(1000);
  }

  /**
   * Sends a frame of the client's own (not a relay) now.
   * @private @param {Object<string, any>} frame
   */
  _put(frame) {
    if (this._closed || this.reconnecting || this._ws.readyState !== WebSocket.OPEN) throw new Error('switchboard: signaling socket is not open');
    this._ws.send(JSON.stringify(frame));
  }

  /**
   * Relays a frame of the SDK's own (offer, answer, candidate, negotiate request); a failure
   * is reported to onError.
   * @internal @param {string} type @param {string} target @param {any} data
   */
  _send(type, target, data) {
    this._request({ type, target, data }).catch((e) => {
      if (!(e instanceof RelayDropped)) this._report(this.peers.get(target) || null, e);
    });
  }

  /**
   * Relays a frame with an id: sent now if the socket is up, else once resumed. Resolves on
   * its ack, rejects on its error.
   * @internal @param {Object<string, any>} frame @returns {Promise<void>}
   */
  _request(frame) {
    return new Promise((resolve, reject) => {
      if (this._closed) {
        reject(new Error('switchboard: client closed'));
        return;
      }
      try {
        this._enqueue(frame, resolve, reject);
      } catch (e) {
        reject(e);
      }
    });
  }

  /**
   * @private @param {Object<string, any>} frame @param {() => void} resolve
   * @param {(e: Error) => void} reject
   */
  _enqueue(frame, resolve, reject) {
    // For a peer not back yet: held here, as sent now it could overtake what is held for it.
    if (this._pending.has(frame.target)) this._out.hold(this._out.make(frame, resolve, reject), true);
    else this._write(this._out.add(frame, resolve, reject));
  }

  /** Sends r now if the socket is up (else it goes once resumed). @private @param {Relay} r */
  _write(r) {
    if (!this.reconnecting && this._ws.readyState === WebSocket.OPEN) this._ws.send(Outbox.text(r, false));
  }

  /** Queues r again with its id. @private @param {Relay} r */
  _again(r) {
    try { this._write(this._out.requeue(r)); } catch (e) { r.reject(/** @type {Error} */ (e)); }
  }

  /**
   * An error answered relay r: unknown-target for a peer expected back holds it for the
   * peer; one sent before the peer was back goes again.
   * @private @param {Relay} r @param {ServerError} err
   */
  _refused(r, err) {
    const target = r.frame.target;
    if (err.code === 'unknown-target' && typeof target === 'string') {
      if (this._pending.has(target)) {
        this._out.hold(r, false);
        return;
      }
      const back = this._out.backAt.get(target);
      if (back !== undefined && r.n < back && !r.again && this.peers.has(target)) {
        this._again(r);
        return;
      }
    }
    r.reject(err);
  }

  /** @internal @param {Peer|null} peer @param {any} err */
  _report(peer, err) {
    if (this._closed) return;
    const e = err instanceof Error ? err : new Error(String(err));
    if (this._opts.onError) this._opts.onError(peer, e);
    else console.warn('switchboard:', peer ? peer.id : '', e);
  }

  /** @private @param {PeerInfo} info */
  _addPeer(info) {
    if (this.peers.has(info.id) || info.id === this.id) return;
    const p = new Peer(this, info);
    this.peers.set(info.id, p);
    if (this._opts.onPeer) {
      try { this._opts.onPeer(p); } catch (e) { this._report(p, e); }
    }
    p._start();
  }

  /** @private @param {string} raw */
  _frame(raw) {
    let f;
    try { f = JSON.parse(raw); } catch { this._report(null, new Error('switchboard: bad frame from server')); return; }
    if (!f || typeof f !== 'object') return;
    const seq = typeof f.seq === 'number' && f.seq > 0 ? f.seq : 0;
    if (seq) {
      if (seq <= this._lastSeq) return; // a duplicate of a replay
      this._lastSeq = seq;
    }
    this._handle(f, seq);
    if (this._replay && seq >= this._replay.end) this._finishReplay();
  }

  /** @private @param {any} f @param {number} seq */
  _handle(f, seq) {
    switch (f.type) {
      case 'peer-joined': {
        const info = f.peer;
        if (!info || typeof info.id !== 'string') return;
        // A replayed arrival of a peer the resumed welcome says is gone: skip it.
        if (this._replay && seq && seq <= this._replay.end && !this._replay.present.has(info.id)) return;
        const known = this.peers.get(info.id);
        if (known) this._peerBack(known, info); // an update, not an arrival
        else this._addPeer(info);
        return;
      }
      case 'peer-updated': {
        const p = f.peer && this.peers.get(f.peer.id);
        if (p) this._updatePeer(p, f.peer);
        return;
      }
      case 'server-message':
        if (this._opts.onServerMessage) {
          try { this._opts.onServerMessage(f.data); } catch (e) { this._report(null, e); }
        }
        return;
      case 'peer-left':
        if (f.peer && typeof f.peer.id === 'string') {
          this._seen.forget(f.peer.id);
          this._removePeer(f.peer.id, f.reason || 'left');
        }
        return;
      case 'offer': case 'answer': case 'ice-candidate': {
        if (this._seen.duplicate(f)) return;
        const p = this.peers.get(f.from);
        if (p) p._signal(f.type, f.data);
        return;
      }
      case 'message': {
        if (this._seen.duplicate(f)) return;
        const p = this.peers.get(f.from);
        if (p) p._message(f.data, !!f.broadcast);
        return;
      }
      case 'ice-servers':
        this._setIceServers(f.iceServers);
        return;
      case 'resume-token':
        if (typeof f.resume === 'string' && f.resume) this._resume = f.resume;
        return;
      case 'ack': {
        const r = this._out.answered(f.id, true);
        if (r) r.resolve();
        return;
      }
      case 'error': {
        const err = new ServerError(f.code, f.message);
        const r = this._out.answered(f.id, false);
        if (r) { this._refused(r, err); return; }
        if (err.final) { this.error = err; return; } // the server closes the socket next
        this._report(null, err);
        return;
      }
    }
  }

  /** @private @param {CloseEvent} ev */
  _socketClosed(ev) {
    // Relays sent on the lost socket and not answered go again after the resume.
    if (!this.error && ev.code === 1008) this.error = new ServerError(ev.reason || 'policy-violation', 'the server closed the connection');
    if (!this._closed && !this.error && this._opts.reconnect !== false && !FINAL_CODES.has(ev.code)) {
      this.reconnecting = true;
      this._retry(1, ev.code);
      return;
    }
    this._final(ev);
  }

  /**
   * Gives up the room: no signaling, no renegotiation, and the server tells every other peer
   * we left, so the peer connections close too.
   * @private @param {CloseEvent} ev
   */
  _final(ev) {
    const wasClosed = this._closed;
    this._closed = true;
    clearTimeout(this._iceTimer);
    this.reconnecting = false;
    for (const p of this.peers.values()) p._close();
    this.peers.clear();
    this._stopPending();
    this._out.clear(new Error(`switchboard: signaling socket closed (${ev.code})`));
    if (!wasClosed && this._opts.onError) {
      this._opts.onError(null, this.error || new Error(`switchboard: signaling socket closed (${ev.code})`));
    }
    if (this._opts.onClose) this._opts.onClose(ev);
  }

  /**
   * Schedules reconnection attempt n after a jittered exponential backoff.
   * @private @param {number} n @param {number} code the close code of the lost socket
   */
  _retry(n, code) {
    const r = this._opts.reconnect || {};
    if (r.maxAttempts !== undefined && n > r.maxAttempts) {
      this._final(new CloseEvent('close', { code }));
      return;
    }
    // A server restarting (1012) wants us back at once: jittered 0–250 ms, not the backoff.
    const delay = n === 1 && code === RESTART_CODE ? Math.random() * 250 : retryDelay(r, n);
    if (this._opts.onReconnecting) {
      try { this._opts.onReconnecting({ attempt: n, code }); } catch (e) { this._report(null, e); }
    }
    this._retryTimer = setTimeout(() => this._reconnect(n, code), delay);
  }

  /**
   * Opens a new signaling socket for a reconnect: resumes the presence with the last
   * welcome's resume token. With a token function, the resume goes without a token and, if
   * the server cannot resume (it answers token-missing, since a new presence needs one), a
   * fresh token joins anew; a token string goes along with the resume, for the server to use
   * only when it cannot resume.
   * @private @returns {Promise<Connection>}
   */
  async _rejoin() {
    const fn = typeof this._opts.token === 'function';
    if (!fn || this._resume) {
      try {
        return await connect(this._url, this.room, this._opts, this._resume, fn ? '' : this._token, this._lastSeq);
      } catch (e) {
        if (!fn || !(e instanceof ServerError) || e.code !== 'token-missing' || this._closed) throw e;
      }
    }
    const token = await freshToken(this._opts);
    this._token = token;
    return connect(this._url, this.room, this._opts, '', token, 0);
  }

  /** @private @param {number} n @param {number} code */
  async _reconnect(n, code) {
    /** @type {Connection} */
    let conn;
    try {
      conn = await this._rejoin();
    } catch (e) {
      if (this._closed) return;
      if (e instanceof ServerError && e.final) {
        // Refused for good (an expired token, ...): retrying cannot help.
        this.error = e;
        this._final(new CloseEvent('close', { code: 1008, reason: e.code }));
        return;
      }
      if (e instanceof ServerError && e.code === 'bad-field') {
        // The server refuses this join for good (a bug, not weather): stop here.
        this._report(null, e);
        this._final(new CloseEvent('close', { code }));
        return;
      }
      this._retry(n + 1, code);
      return;
    }
    if (this._closed) {
      conn.ws.onmessage = null;
      try { conn.ws.close(1000); } catch { /* closed */ }
      return;
    }
    const w = conn.welcome;
    this._resume = w.resume || '';
    if (w.resumeMs) this._resumeMs = w.resumeMs;
    this.reconnecting = false;
    if (w.resumed) {
      this._attach(conn);
      this._reconcile(w);
      // Unanswered relays first, in order, before anything sent from here on; after a restored
      // welcome the recent acked ones before them (the server that queued them is gone).
      // Those for a peer expected back are held until it is.
      this._out.resend(!!w.restored, (t) => this._pending.has(t), (r) => conn.ws.send(Outbox.text(r, true)));
    } else {
      // A new presence: the others saw us leave and know nothing of our new id. Every pair
      // starts over; what was queued for the old pairs is moot.
      const old = [...this.peers.values()];
      this.peers.clear();
      for (const p of old) {
        p._close();
        if (this._opts.onPeerLeft) {
          try { this._opts.onPeerLeft(p, 'reconnect'); } catch (e) { this._report(p, e); }
        }
      }
      this._out.clear(new RelayDropped());
      this._stopPending();
      this._replay = null;
      this._lastSeq = 0;
      this.id = w.peer;
      this._attach(conn);
    }
    if (w.iceServers) this._setIceServers(w.iceServers); // minted for this welcome
    if (this._opts.onReconnected) {
      try { this._opts.onReconnected({ resumed: !!w.resumed, id: this.id }); } catch (e) { this._report(null, e); }
    }
    this._start(w.resumed ? [] : (w.peers || []), conn.early);
    if (w.resumed && (w.gap || w.restored)) {
      for (const p of this.peers.values()) p._do(() => p._recover());
    }
  }

  /**
   * Brings the peers in line with a resumed welcome.
   * @private @param {any} w
   */
  _reconcile(w) {
    /** @type {PeerInfo[]} */
    const peers = Array.isArray(w.peers) ? w.peers : [];
    let s = 0; // the presence's counter before the replay ("seq", omitted when 0)
    if (typeof w.seq === 'number') s = w.seq;
    // A server from before seq lists no peers in a resumed welcome; a server of today whose
    // counter is 0 sent us no event, so no peer of ours can have left.
    else if (!w.restored && peers.length === 0) return;
    if (s < this._lastSeq) this._lastSeq = s; // the counter started again (restored)
    this._finishReplay(); // one cut short by this reconnect
    const present = new Set(peers.map((p) => p.id));
    const gone = [...this.peers.keys()].filter((id) => !present.has(id));
    for (const info of peers) {
      const known = this.peers.get(info.id);
      if (known) this._peerBack(known, info);
      else this._addPeer(info);
    }
    if (w.restored) {
      for (const id of gone) this._await(id);
      return;
    }
    this._replay = { end: s, present, gone };
    if (w.gap || s <= this._lastSeq) this._finishReplay();
  }

  /** Removes the peers a resumed welcome said are gone and the replay did not. @private */
  _finishReplay() {
    const r = this._replay;
    this._replay = null;
    if (r) for (const id of r.gone) this._removePeer(id, 'left');
  }

  /** Gives peer id resumeMs to come back. @private @param {string} id */
  _await(id) {
    if (this._pending.has(id)) return;
    this._pending.set(id, setTimeout(() => {
      this._pending.delete(id);
      this._removePeer(id, 'timeout');
    }, this._resumeMs));
  }

  /** @private */
  _stopPending() {
    for (const t of this._pending.values()) clearTimeout(t);
    this._pending.clear();
  }

  /** @private @param {string} id */
  _dropHeld(id) {
    const held = this._out.held.get(id) || [];
    this._out.held.delete(id);
    for (const r of held) r.reject(new RelayDropped());
  }

  /**
   * A peer-joined (or a resumed welcome) for a peer already known: an update; a peer we
   * were waiting for gets the relays held for it, in order.
   * @private @param {Peer} p @param {PeerInfo} info
   */
  _peerBack(p, info) {
    if ((info.name || '') !== p.name || JSON.stringify(info.meta) !== JSON.stringify(p.meta)) this._updatePeer(p, info);
    // What is held for it goes in the order it was sent, before anything sent from now on;
    // restored where it is now, the recent acked relays to it go too (as retries, first):
    // its former server may not have written them.
    const again = info.resumed ? this._out.takeRecent(p.id) : [];
    const t = this._pending.get(p.id);
    if (t !== undefined) {
      clearTimeout(t);
      this._pending.delete(p.id);
      again.push(...(this._out.held.get(p.id) || []));
      this._out.held.delete(p.id);
      this._out.backAt.set(p.id, this._out.next);
    }
    again.sort((x, y) => x.n - y.n);
    for (const r of again) this._again(r);
  }

  /** @private @param {Peer} p @param {PeerInfo} info */
  _updatePeer(p, info) {
    p.name = info.name || '';
    p.meta = info.meta;
    if (this._opts.onPeerUpdated) {
      try { this._opts.onPeerUpdated(p); } catch (e) { this._report(p, e); }
    }
  }

  /** @private @param {string} id @param {string} reason */
  _removePeer(id, reason) {
    const t = this._pending.get(id);
    if (t !== undefined) { clearTimeout(t); this._pending.delete(id); }
    this._dropHeld(id);
    const p = this.peers.get(id);
    if (!p) return;
    this.peers.delete(id);
    this._out.backAt.delete(id);
    p._close();
    if (this._opts.onPeerLeft) {
      try { this._opts.onPeerLeft(p, reason); } catch (e) { this._report(p, e); }
    }
  }
}
