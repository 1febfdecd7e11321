// sdk-peer.js: the browser SDK's Peer (part of switchboard.js, which re-exports it): one
// RTCPeerConnection to a remote peer and its negotiation — the impolite side makes every offer,
// the polite side asks for one with a negotiate message; every step runs on the pair's queue.

/** @typedef {import('./sdk-client.js').Client} Client */
/** @typedef {import('./switchboard.js').PeerInfo} PeerInfo */

/** The reserved data channel label the offering side opens; never shown to the app. */
export const CONTROL_LABEL = 'switchboard';

/** Bound on transceivers a remote peer's negotiate requests can make us allocate. */
const MAX_TRANSCEIVERS = 64;

/**
 * @typedef {Object} NegotiateRequest
 * @property {'negotiate'} switchboard
 * @property {number} [audio]
 * @property {number} [video]
 * @property {boolean} [resend] the asking side may have missed an offer: send it again
 * @property {boolean} [restart] the asking side's ICE is not connected: restart ICE
 */

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
    /** Offers made (impolite side) or answers made (polite side) so far. @private */
    this._exchanges = 0;

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
    pc.onnegotiationneeded = () => {
      const seen = this._exchanges;
      this._do(() => this._onNegotiationNeeded(seen));
    };
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
    this._do(async () => {
      // The first offer goes now, with the control channel and whatever onPeer added: the
      // browser's negotiationneeded comes a task later, tens of milliseconds on a busy page,
      // and then finds this exchange under way (_onNegotiationNeeded).
      this._control = this.pc.createDataChannel(CONTROL_LABEL);
      await this._negotiate();
    });
  }

  /**
   * Queues op on the pair's negotiation queue: every step runs in order.
   * @internal @param {() => (void|Promise<void>)} op
   */
  _do(op) {
    this._ops = this._ops
      .then(() => (this._closed ? undefined : op()))
      .catch((e) => this._c._report(this, e));
  }

  /**
   * The browser says a negotiation is needed; seen is _exchanges when it did.
   * @private @param {number} seen
   */
  async _onNegotiationNeeded(seen) {
    // An exchange made since covers it: an offer made after the event carries what it was for
    // (the browser fires again at stable if not), and after an answer _description asks for
    // what is left.
    if (this._exchanges !== seen) return;
    if (!this.polite) {
      // Fired while an exchange was being made (the first offer of _start, say): the browser
      // checks again once it completes and fires anew if something is still left out.
      if (this.pc.signalingState !== 'stable') return;
      await this._negotiate();
      return;
    }
    if (this._askedToNegotiate) return; // an offer is on its way; the browser asks again if needed
    // Before the first offer: the other side offers on its own (_start) and its m-lines take
    // our tracks; what they leave out is asked for once that offer is answered.
    if (!this.pc.remoteDescription) return;
    this._ask(this._unsent());
  }

  /**
   * Our tracks without an m-line yet (polite side), by kind.
   * @private @returns {{audio: number, video: number}}
   */
  _unsent() {
    let audio = 0, video = 0;
    for (const t of this.pc.getTransceivers()) {
      const track = t.sender && t.sender.track;
      if (t.mid !== null || !track || t.currentDirection === 'stopped') continue;
      if (track.kind === 'audio') audio++;
      else if (track.kind === 'video') video++;
    }
    return { audio, video };
  }

  /**
   * Asks the impolite side for an offer with m-lines for what we want to send.
   * @private @param {{audio: number, video: number}} want
   */
  _ask(want) {
    /** @type {NegotiateRequest} */
    const req = { switchboard: 'negotiate' };
    if (want.audio) req.audio = want.audio;
    if (want.video) req.video = want.video;
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
    if (req.resend || req.restart) {
      await this._recover();
      if (!req.audio && !req.video) return;
    }
    const audio = Math.max(0, Math.min(16, Number(req.audio) || 0));
    const video = Math.max(0, Math.min(16, Number(req.video) || 0));
    if (this.pc.getTransceivers().length + audio + video > MAX_TRANSCEIVERS) {
      throw new Error(`switchboard: renegotiation would exceed ${MAX_TRANSCEIVERS} transceivers`);
    }
    for (let i = 0; i < audio; i++) this.pc.addTransceiver('audio', { direction: 'recvonly' });
    for (let i = 0; i < video; i++) this.pc.addTransceiver('video', { direction: 'recvonly' });
    await this._negotiate();
  }

  /** Makes and sends an offer (impolite side only). @private @param {boolean} [iceRestart] */
  async _negotiate(iceRestart = false) {
    if (this.pc.signalingState !== 'stable') {
      this._renegotiatePending = true; // offer again once the current exchange completes
      return;
    }
    this._renegotiatePending = false;
    this._exchanges++;
    const offer = await this.pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
    await this.pc.setLocalDescription(offer);
    const d = /** @type {RTCSessionDescription} */ (this.pc.localDescription);
    this._c._send('offer', this.id, { type: d.type, sdp: d.sdp });
  }

  /** @private @returns {boolean} */
  _iceUp() {
    const s = this.pc.iceConnectionState;
    return s === 'connected' || s === 'completed';
  }

  /**
   * After signaling events may have been lost (a resumed welcome with gap or restored, or
   * the other side asking with resend): the offering side sends its unanswered offer again,
   * or offers anew (restarting ICE unless connected), which also answers a lost negotiate
   * request; the answering side asks it to. Runs on the pair's queue.
   * @internal
   */
  async _recover() {
    if (this.polite) {
      this._askedToNegotiate = true;
      /** @type {NegotiateRequest} */
      const req = { switchboard: 'negotiate', resend: true };
      if (!this._iceUp()) req.restart = true;
      this._c._send('message', this.id, req);
      return;
    }
    const d = this.pc.localDescription;
    if (this.pc.signalingState === 'have-local-offer' && d) {
      this._c._send('offer', this.id, { type: d.type, sdp: d.sdp });
      return;
    }
    await this._negotiate(!this._iceUp());
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
    // The answer to an offer sent twice after lost signaling events: the first one completed
    // the exchange.
    if (desc.type === 'answer' && this.pc.signalingState === 'stable') return;
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
    this._exchanges++;
    const d = /** @type {RTCSessionDescription} */ (this.pc.localDescription);
    this._c._send('answer', this.id, { type: d.type, sdp: d.sdp });
    // Tracks added before the offer that it had no m-line for (negotiationneeded kept quiet).
    const want = this._unsent();
    if (want.audio || want.video) this._ask(want);
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
    if (data && typeof data === 'object' && !Array.isArray(data) && data.switchboard === 'quic') {
      return; // the Go SDK's QUIC exchange (docs/protocol.md): no part of a browser's; never surfaced
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
