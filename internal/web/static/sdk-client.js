// sdk-client.js: the browser SDK's Client (part of switchboard.js, which re-exports it): the
// signaling socket and its frames, requests and acks, TURN credential refresh, the room's
// peers, and reconnection (resume, or a new presence).

import { Peer } from './sdk-peer.js';
import { ServerError } from './sdk-errors.js';
import { FINAL_CODES, connect, freshToken, retryDelay } from './sdk-connect.js';

/** @typedef {import('./switchboard.js').JoinOptions} JoinOptions */
/** @typedef {import('./switchboard.js').PeerInfo} PeerInfo */
/** @typedef {import('./sdk-connect.js').Connection} Connection */

/** Bound on frames queued while the signaling socket reconnects. */
const MAX_OUTBOX = 1000;

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
    /** @private @type {Map<string, {resolve: () => void, reject: (e: Error) => void}>} */
    this._acks = new Map();
    /** @private @type {string} */ this._resume = welcome.resume || '';
    /** @private @type {string[]} frames to send once reconnected */ this._outbox = [];
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
    this._failAcks(new Error('switchboard: client closed'));
    if (this.reconnecting) {
      // The socket is gone already: no close event will come, so say it here.
      this.reconnecting = false;
      clearTimeout(this._retryTimer);
      this._outbox = [];
      if (this._opts.onClose) this._opts.onClose(new CloseEvent('close', { code: 1000, wasClean: true }));
      return;
    }
    try { this._ws.send(JSON.stringify({ type: 'leave' })); } catch { /* not open */ }
    this._ws.close(1000);
  }

  /**
   * Sends a frame now, or once reconnected.
   * @private @param {Object<string, any>} frame
   */
  _put(frame) {
    const text = JSON.stringify(frame);
    if (this.reconnecting) {
      if (this._outbox.length >= MAX_OUTBOX) throw new Error('switchboard: too much queued while reconnecting');
      this._outbox.push(text);
      return;
    }
    if (this._closed || this._ws.readyState !== WebSocket.OPEN) throw new Error('switchboard: signaling socket is not open');
    this._ws.send(text);
  }

  /**
   * Sends a frame without a request id (queued while reconnecting).
   * @internal @param {string} type @param {string} target @param {any} data
   */
  _send(type, target, data) {
    this._put({ type, target, data });
  }

  /**
   * Sends a frame with a request id; resolves on its ack, rejects on its error.
   * @internal @param {Object<string, any>} frame @returns {Promise<void>}
   */
  _request(frame) {
    return new Promise((resolve, reject) => {
      const id = `m${++this._seq}`;
      try {
        this._put({ ...frame, id });
      } catch (e) {
        reject(e);
        return;
      }
      this._acks.set(id, { resolve, reject });
    });
  }

  /** @private @param {Error} err */
  _failAcks(err) {
    for (const a of this._acks.values()) a.reject(err);
    this._acks.clear();
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
    switch (f.type) {
      case 'peer-joined':
        if (f.peer && typeof f.peer.id === 'string') this._addPeer(f.peer);
        return;
      case 'peer-updated': {
        const p = f.peer && this.peers.get(f.peer.id);
        if (!p) return;
        p.name = f.peer.name || '';
        p.meta = f.peer.meta;
        if (this._opts.onPeerUpdated) {
          try { this._opts.onPeerUpdated(p); } catch (e) { this._report(p, e); }
        }
        return;
      }
      case 'server-message':
        if (this._opts.onServerMessage) {
          try { this._opts.onServerMessage(f.data); } catch (e) { this._report(null, e); }
        }
        return;
      case 'peer-left': {
        const p = f.peer && this.peers.get(f.peer.id);
        if (!p) return;
        this.peers.delete(p.id);
        p._close();
        if (this._opts.onPeerLeft) this._opts.onPeerLeft(p, f.reason || 'left');
        return;
      }
      case 'offer': case 'answer': case 'ice-candidate': {
        const p = this.peers.get(f.from);
        if (p) p._signal(f.type, f.data);
        return;
      }
      case 'message': {
        const p = this.peers.get(f.from);
        if (p) p._message(f.data, !!f.broadcast);
        return;
      }
      case 'ice-servers':
        this._setIceServers(f.iceServers);
        return;
      case 'ack': {
        const a = this._acks.get(String(f.id));
        if (a) { this._acks.delete(String(f.id)); a.resolve(); }
        return;
      }
      case 'error': {
        const err = new ServerError(f.code, f.message);
        const a = f.id != null && this._acks.get(String(f.id));
        if (a) { this._acks.delete(String(f.id)); a.reject(err); return; }
        if (err.final) { this.error = err; return; } // the server closes the socket next
        this._report(null, err);
        return;
      }
    }
  }

  /** @private @param {CloseEvent} ev */
  _socketClosed(ev) {
    // Requests sent on the lost socket may or may not have been handled: say they failed.
    this._failAcks(new Error(`switchboard: signaling socket closed (${ev.code})`));
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
    this._outbox = [];
    for (const p of this.peers.values()) p._close();
    this.peers.clear();
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
    const delay = retryDelay(r, n);
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
        return await connect(this._url, this.room, this._opts, this._resume, fn ? '' : this._token);
      } catch (e) {
        if (!fn || !(e instanceof ServerError) || e.code !== 'token-missing' || this._closed) throw e;
      }
    }
    const token = await freshToken(this._opts);
    this._token = token;
    return connect(this._url, this.room, this._opts, '', token);
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
    this.reconnecting = false;
    const outbox = this._outbox;
    this._outbox = [];
    if (w.resumed) {
      for (const text of outbox) conn.ws.send(text);
      this._attach(conn);
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
      this.id = w.peer;
      this._attach(conn);
    }
    if (w.iceServers) this._setIceServers(w.iceServers); // minted for this welcome
    if (this._opts.onReconnected) {
      try { this._opts.onReconnected({ resumed: !!w.resumed, id: this.id }); } catch (e) { this._report(null, e); }
    }
    this._start(w.resumed ? [] : (w.peers || []), conn.early);
  }
}
