// switchboard.js: Switchboard's browser peer SDK, a plain ES module (no bundler, no
// dependencies). It speaks the native signaling protocol on GET /ws (docs/protocol.md) and
// negotiates exactly like the Go SDK (sdk/), so browsers and Go peers connect to each other:
//
//   - One RTCPeerConnection per remote peer, ICE servers from the server's welcome.
//   - The side whose peer id is greater is polite and NEVER makes an offer. The impolite side
//     opens the reserved data channel "switchboard" to start the first negotiation and makes
//     every offer. When the polite side needs a renegotiation (it added a track, ...) it relays
//     a `message` {"switchboard":"negotiate","audio":N,"video":M}; the impolite side adds N
//     audio and M video recvonly transceivers and offers. Offers therefore never collide.
//   - Every negotiation step of a pair runs in order on that pair's queue; remote candidates
//     that arrive before the remote description wait and are added right after it.
//   - Trickle ICE both ways.
//   - The signaling socket reconnects by itself. A socket lost without a goodbye is resumed
//     with the welcome's resume token: same peer id, peer connections untouched, missed events
//     replayed. If the server cannot resume (grace passed, another node), the client joins
//     anew and rebuilds every peer connection under its new id.
//   - Access tokens (docs/auth.md): the `token` option goes in the join frame, never in a URL.
//     A function is called for the first join and again whenever a fresh join is needed after
//     a failed resume. A refused token and a presence the server ended (replaced, removed,
//     room-closed) are final: no reconnect, onError gets the ServerError, then onClose.
//
// See docs/browser-sdk.md. Type-checkable with `tsc --checkJs --noEmit --lib es2022,dom`.

/** The reserved data channel label the offering side opens; never shown to the app. */
export const CONTROL_LABEL = 'switchboard';

/** Bound on transceivers a remote peer's negotiate requests can make us allocate. */
const MAX_TRANSCEIVERS = 64;

/**
 * @typedef {Object} PeerInfo
 * @property {string} id
 * @property {string} [identity] the user the peer's access token names (its sub)
 * @property {string} [name]
 * @property {Object<string, any>} [meta]
 */

/**
 * @typedef {Object} JoinOptions
 * @property {string|(() => string|Promise<string>)} [token] access token for a server with API
 *   keys (docs/auth.md), sent in the join frame; the server takes the room, name and meta from
 *   it. A function is called for the first join and again whenever the client must join anew
 *   after a resume failed (a resumed presence needs no token)
 * @property {string} [name] display name shown to the other peers (≤ 64 bytes)
 * @property {Object<string, any>} [meta] metadata object shown to the other peers
 * @property {(peer: Peer) => void} [onPeer] called for each remote peer as soon as its
 *   RTCPeerConnection exists and before any negotiation: set the peer's handlers here
 * @property {(peer: Peer, reason: string) => void} [onPeerLeft] a remote peer left
 *   (reason: left, closed, timeout, slow, kicked, shutdown)
 * @property {(peer: Peer|null, err: Error) => void} [onError] errors of one pair (bad SDP,
 *   ICE failure) or of the signaling connection (peer is null); the client goes on, except
 *   after a ServerError whose `final` is true (a refused token on a rejoin, replaced, removed,
 *   room-closed): onClose follows and client.error holds it
 * @property {(peer: Peer) => void} [onPeerUpdated] the server changed a remote peer's name or
 *   meta (server API); peer.name and peer.meta hold the new values
 * @property {(data: any) => void} [onServerMessage] a message from the application through the
 *   server API, to this peer or its room
 * @property {(ev: CloseEvent) => void} [onClose] the signaling socket closed (also after close())
 * @property {RTCIceServer[]} [iceServers] replace the ICE servers from the welcome
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] e.g. "relay" for TURN only
 * @property {number} [timeout] milliseconds to wait for the welcome (default 10000)
 * @property {false|ReconnectOptions} [reconnect] false: never reconnect the signaling socket
 * @property {(info: {attempt: number, code: number}) => void} [onReconnecting] the signaling
 *   socket was lost (close code `code`); attempt `attempt` (1, 2, ...) starts after a backoff.
 *   Peer connections stay up meanwhile
 * @property {(info: {resumed: boolean, id: string}) => void} [onReconnected] the client is
 *   back in its room. resumed: same id, nothing was lost; otherwise every remote peer was
 *   reported to onPeerLeft (reason "reconnect") and is being connected anew under the new id
 */

/**
 * @typedef {Object} ReconnectOptions
 * @property {number} [maxAttempts] attempts before giving up and calling onClose (default: no limit)
 * @property {number} [minDelayMs] first backoff (default 250), doubled per attempt
 * @property {number} [maxDelayMs] backoff cap (default 5000); each delay is jittered ±25%
 */

/** Close codes after which the client does not reconnect: its own fault, a retry would repeat it. */
const FINAL_CODES = new Set([1000, 1002, 1007, 1008, 1009]);

/** Bound on frames queued while the signaling socket reconnects. */
const MAX_OUTBOX = 1000;

/**
 * @typedef {Object} NegotiateRequest
 * @property {'negotiate'} switchboard
 * @property {number} [audio]
 * @property {number} [video]
 */

/**
 * Error codes after which the server closes the connection and a retry would be refused the
 * same way: a refused access token, or a presence the server ended.
 */
export const FINAL_ERRORS = new Set(['token-missing', 'token-invalid', 'token-expired', 'token-not-yet-valid',
  'room-not-granted', 'join-not-granted', 'replaced', 'removed', 'room-closed']);

/** An error frame from the signaling server. */
export class ServerError extends Error {
  /**
   * @param {string} code stable, machine-readable code (docs/protocol.md)
   * @param {string} message
   */
  constructor(code, message) {
    super(`switchboard: ${code}: ${message}`);
    this.name = 'ServerError';
    /** @type {string} */
    this.code = code;
    /** The client does not retry after it (see FINAL_ERRORS). @type {boolean} */
    this.final = FINAL_ERRORS.has(code);
  }
}

/**
 * Connects to a Switchboard server, joins room and starts connecting to every peer in it.
 * Resolves once the server has welcomed the client.
 *
 * @param {string} serverWsUrl the signaling endpoint, e.g. "wss://example.org/ws"
 * @param {string} room 1–64 characters of A-Z a-z 0-9 _ - . ('' when options.token names one)
 * @param {JoinOptions} [options]
 * @returns {Promise<Client>}
 */
export async function join(serverWsUrl, room, options = {}) {
  const token = await freshToken(options);
  const conn = await connect(serverWsUrl, room, options, '', token);
  const client = new Client(serverWsUrl, conn, options);
  client._token = token;
  client._start(conn.welcome.peers || [], conn.early);
  return client;
}

/**
 * @typedef {Object} Connection
 * @property {WebSocket} ws
 * @property {any} welcome
 * @property {string[]} early frames that arrived after the welcome, before the client took over
 */

/**
 * The access token for a new presence: options.token, or what the function returns.
 * @param {JoinOptions} options @returns {Promise<string>}
 */
async function freshToken(options) {
  const t = options.token;
  if (typeof t !== 'function') return t || '';
  try {
    return String(await t());
  } catch (e) {
    throw new Error(`switchboard: cannot get an access token: ${e instanceof Error ? e.message : e}`);
  }
}

/**
 * Opens a signaling socket and joins room ('' for the token's) with the access token, if any,
 * resuming with resume when given.
 * @param {string} url @param {string} room @param {JoinOptions} options @param {string} resume
 * @param {string} token
 * @returns {Promise<Connection>}
 */
function connect(url, room, options, resume, token) {
  const ws = new WebSocket(url);
  const timeout = options.timeout ?? 10000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('switchboard: no welcome in time')), timeout);
    /** @param {Error} err */
    const fail = (err) => {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(); } catch { /* already closed */ }
      reject(err);
    };
    ws.onopen = () => {
      /** @type {Object<string, any>} */
      const frame = { type: 'join', id: 'join', v: 1 };
      if (room) frame.room = room;
      if (token) frame.token = token;
      if (options.name) frame.name = options.name;
      if (options.meta) frame.meta = options.meta;
      if (resume) frame.resume = resume;
      ws.send(JSON.stringify(frame));
    };
    ws.onerror = () => fail(new Error(`switchboard: cannot connect to ${url}`));
    ws.onclose = (ev) => fail(ev.code === 1008
      ? new ServerError(ev.reason || 'policy-violation', 'the server closed the connection')
      : new Error(`switchboard: socket closed before welcome (${ev.code})`));
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch { return fail(new Error('switchboard: bad frame from server')); }
      if (f.type === 'error') return fail(new ServerError(f.code, f.message));
      if (f.type !== 'welcome') return;
      clearTimeout(timer);
      /** @type {string[]} */
      const early = [];
      ws.onmessage = (e) => { early.push(e.data); };
      ws.onopen = ws.onerror = ws.onclose = null;
      resolve({ ws, welcome: f, early });
    };
  });
}

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
    const min = r.minDelayMs ?? 250, max = r.maxDelayMs ?? 5000;
    const delay = Math.min(max, min * 2 ** (n - 1)) * (0.75 + Math.random() / 2);
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

/** One remote peer of the room and the RTCPeerConnection to it. */
export class Peer {
  /**
   * @param {Client} client
   * @param {PeerInfo} info
   */
  constructor(client, info) {
    /** @private */ this._c = client;
    /** The remote peer's id. @type {string} */
    this.id = info.id;
    /** The user the peer's access token names (its sub), or '' on an open server. @type {string} */
    this.identity = info.identity || '';
    /** @type {string} */
    this.name = info.name || '';
    /** @type {Object<string, any>|undefined} */
    this.meta = info.meta;
    /**
     * True when this side is the pair's answering side: it never makes an offer but asks the
     * other side to renegotiate. Exactly one side of a pair is polite.
     * @type {boolean}
     */
    this.polite = client.id > info.id;
    /** The underlying connection (add tracks and channels through the Peer's methods). */
    this.pc = new RTCPeerConnection({
      iceServers: client.iceServers,
      iceTransportPolicy: client._opts.iceTransportPolicy || 'all',
    });

    /** Data channels the remote peer opens. @type {((channel: RTCDataChannel) => void)|null} */
    this.onDataChannel = null;
    /** Remote media. @type {((track: MediaStreamTrack, streams: readonly MediaStream[], ev: RTCTrackEvent) => void)|null} */
    this.onTrack = null;
    /** Connection state changes. @type {((state: RTCPeerConnectionState) => void)|null} */
    this.onConnectionState = null;
    /** Messages the remote peer relays through the server (peer.send / broadcast). @type {((data: any, broadcast: boolean) => void)|null} */
    this.onMessage = null;

    /** @private @type {Promise<void>} */ this._ops = Promise.resolve();
    /** @private */ this._closed = false;
    /** @private */ this._askedToNegotiate = false; // polite: a request is out, no offer yet
    /** @private */ this._renegotiatePending = false; // impolite: asked for mid-exchange
    /** @private @type {RTCIceCandidateInit[]} */ this._pending = [];
    /** @private @type {RTCDataChannel|null} */ this._control = null;

    /** @private @type {() => void} */ this._resolveConnected = () => {};
    /** Resolves once the connection first reaches "connected". @type {Promise<void>} */
    this.connected = new Promise((resolve) => { this._resolveConnected = resolve; });
    /** @private @type {() => void} */ this._resolveClosed = () => {};
    /** Resolves once the peer has left or the client closed. @type {Promise<void>} */
    this.closed = new Promise((resolve) => { this._resolveClosed = resolve; });

    const pc = this.pc;
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return; // end of gathering
      try { client._send('ice-candidate', this.id, ev.candidate.toJSON()); } catch (e) { client._report(this, e); }
    };
    pc.onnegotiationneeded = () => this._do(() => this._onNegotiationNeeded());
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected') this._resolveConnected();
      if (s === 'failed') client._report(this, new Error(`switchboard: connection to ${this.id} failed`));
      if (this.onConnectionState) this.onConnectionState(s);
    };
    pc.ondatachannel = (ev) => {
      if (ev.channel.label === CONTROL_LABEL) { this._control = ev.channel; return; }
      if (this.onDataChannel) this.onDataChannel(ev.channel);
    };
    pc.ontrack = (ev) => {
      if (this.onTrack) this.onTrack(ev.track, ev.streams, ev);
    };
  }

  /** The connection state ("new", "connecting", "connected", ...). @returns {RTCPeerConnectionState} */
  get connectionState() { return this.pc.connectionState; }

  /**
   * Opens a data channel to the peer; negotiation follows by itself.
   * @param {string} label any label but the reserved "switchboard"
   * @param {RTCDataChannelInit} [init]
   * @returns {RTCDataChannel}
   */
  createDataChannel(label, init) {
    if (label === CONTROL_LABEL) throw new Error(`switchboard: data channel label "${CONTROL_LABEL}" is reserved`);
    if (this._closed) throw new Error('switchboard: peer closed');
    return this.pc.createDataChannel(label, init);
  }

  /**
   * Sends a local track to the peer; negotiation follows by itself.
   * @param {MediaStreamTrack} track
   * @param {...MediaStream} streams
   * @returns {RTCRtpSender}
   */
  addTrack(track, ...streams) {
    if (this._closed) throw new Error('switchboard: peer closed');
    return this.pc.addTrack(track, ...streams);
  }

  /**
   * Stops sending a track added with addTrack; negotiation follows by itself.
   * @param {RTCRtpSender} sender
   */
  removeTrack(sender) {
    if (this._closed) throw new Error('switchboard: peer closed');
    this.pc.removeTrack(sender);
  }

  /**
   * Relays data (any JSON value) to this peer through the signaling server. Resolves when the
   * server has queued it; rejects with a ServerError (e.g. unknown-target) otherwise.
   * @param {any} data
   * @returns {Promise<void>}
   */
  send(data) {
    return this._c._request({ type: 'message', target: this.id, data });
  }

  /** @internal */
  _start() {
    if (this.polite) return; // the answering side waits for the offer
    this._do(() => {
      // Opening the control channel makes the browser fire negotiationneeded.
      this._control = this.pc.createDataChannel(CONTROL_LABEL);
    });
  }

  /**
   * Queues op on the pair's negotiation queue: every step runs in order.
   * @private @param {() => (void|Promise<void>)} op
   */
  _do(op) {
    this._ops = this._ops
      .then(() => (this._closed ? undefined : op()))
      .catch((e) => this._c._report(this, e));
  }

  /** @private */
  async _onNegotiationNeeded() {
    if (!this.polite) {
      await this._negotiate();
      return;
    }
    if (this._askedToNegotiate) return; // an offer is on its way; the browser asks again if needed
    /** @type {NegotiateRequest} */
    const req = { switchboard: 'negotiate' };
    let audio = 0, video = 0;
    for (const t of this.pc.getTransceivers()) {
      const track = t.sender && t.sender.track;
      if (t.mid !== null || !track || t.currentDirection === 'stopped') continue;
      if (track.kind === 'audio') audio++;
      else if (track.kind === 'video') video++;
    }
    if (audio) req.audio = audio;
    if (video) req.video = video;
    this._askedToNegotiate = true;
    this._c._send('message', this.id, req);
  }

  /**
   * The impolite side honours a negotiate request: recvonly transceivers for what the other
   * side wants to send, then an offer.
   * @private @param {NegotiateRequest} req
   */
  async _renegotiate(req) {
    if (this.polite) return; // only the offering side honours requests
    const audio = Math.max(0, Math.min(16, Number(req.audio) || 0));
    const video = Math.max(0, Math.min(16, Number(req.video) || 0));
    if (this.pc.getTransceivers().length + audio + video > MAX_TRANSCEIVERS) {
      throw new Error(`switchboard: renegotiation would exceed ${MAX_TRANSCEIVERS} transceivers`);
    }
    for (let i = 0; i < audio; i++) this.pc.addTransceiver('audio', { direction: 'recvonly' });
    for (let i = 0; i < video; i++) this.pc.addTransceiver('video', { direction: 'recvonly' });
    await this._negotiate();
  }

  /** Makes and sends an offer (impolite side only). @private */
  async _negotiate() {
    if (this.pc.signalingState !== 'stable') {
      this._renegotiatePending = true; // offer again once the current exchange completes
      return;
    }
    this._renegotiatePending = false;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    const d = /** @type {RTCSessionDescription} */ (this.pc.localDescription);
    this._c._send('offer', this.id, { type: d.type, sdp: d.sdp });
  }

  /** @internal @param {string} type @param {any} data */
  _signal(type, data) {
    this._do(() => (type === 'ice-candidate' ? this._candidate(data) : this._description(data)));
  }

  /** @private @param {any} desc */
  async _description(desc) {
    if (!desc || (desc.type !== 'offer' && desc.type !== 'answer') || typeof desc.sdp !== 'string') {
      throw new Error('switchboard: bad description from peer');
    }
    if (desc.type === 'offer' && !this.polite) throw new Error('switchboard: an offer from the answering side of the pair');
    if (desc.type === 'answer' && this.polite) throw new Error('switchboard: an answer to the answering side of the pair');
    await this.pc.setRemoteDescription({ type: desc.type, sdp: desc.sdp });
    const queued = this._pending;
    this._pending = [];
    for (const c of queued) {
      try { await this.pc.addIceCandidate(c); } catch (e) { this._c._report(this, e); }
    }
    if (desc.type === 'answer') {
      if (this._renegotiatePending) await this._negotiate();
      return;
    }
    this._askedToNegotiate = false;
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    const d = /** @type {RTCSessionDescription} */ (this.pc.localDescription);
    this._c._send('answer', this.id, { type: d.type, sdp: d.sdp });
  }

  /** @private @param {any} c */
  async _candidate(c) {
    if (!c || typeof c.candidate !== 'string' || c.candidate === '') return; // end-of-candidates
    /** @type {RTCIceCandidateInit} */
    const init = { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
    if (c.usernameFragment) init.usernameFragment = c.usernameFragment;
    if (!this.pc.remoteDescription) {
      this._pending.push(init);
      return;
    }
    await this.pc.addIceCandidate(init);
  }

  /** @internal @param {any} data @param {boolean} broadcast */
  _message(data, broadcast) {
    if (data && typeof data === 'object' && !Array.isArray(data) && data.switchboard === 'negotiate') {
      if (!broadcast) this._do(() => this._renegotiate(data)); // the SDK's own; never surfaced
      return;
    }
    if (this.onMessage) this.onMessage(data, broadcast);
  }

  /** @internal */
  _close() {
    if (this._closed) return;
    this._closed = true;
    this.pc.close();
    this._resolveClosed();
  }
}
