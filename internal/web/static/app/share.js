// share.js: screen sharing (getDisplayMedia) in the call, an extension of app.js (through
// callmedia.js). The presenter's screen goes to every remote peer as a second video track; the
// others show it on a tile of its own (tiles.js, data-kind="screen") in the spotlight: large,
// the faces in a strip beside it (below it on a phone), captioned "X is presenting".
//
// Which remote stream is a screen: before adding the track, the presenter says so in its media
// state (state.js: the field `screen`, relayed to the room and to each newcomer): the id of a
// MediaStream the page makes once for its screen shares (every share's track is added with it,
// so the track's msid carries it). The peer's ontrack for that stream then goes to the screen's
// tile, not to the person's. Relays and offers from one peer are relayed in order, so the state
// comes first; if the track came first all the same, it moves when the state arrives and the
// person's tile gets its camera back. `screen: ""` ends it.
//
// Adding the track renegotiates through the browser SDK (sdk-peer.js): on the offering
// (impolite) side its own offer, on the answering (polite) side a negotiate request that makes
// the other side add a recvonly transceiver and offer. Stopping removes the track
// (removeTrack: the transceiver turns recvonly, the receiver's stream loses the track); a later
// share reuses the same sender (replaceTrack, direction back to sending), so shares do not pile
// up transceivers. The msid stays the same across shares on purpose: Chromium 156, given a new
// one with setStreams, went back to the old one on a later renegotiation now and then, and the
// receiving page then took the screen for a camera. The browser's own "Stop sharing" ends the
// track ("ended"), which stops the share everywhere the same way. People who join while a share
// is on get it at once.

import { toast, peerName } from '/app/page.js';
import { Tile } from '/app/tiles.js';
import { setLabel } from '/app/controls.js';

/** @typedef {import('/app/page.js').Remote} Remote */
/** @typedef {import('/sdk/switchboard.js').Peer} Peer */
/** @typedef {import('/app/tiles.js').Tiles} Tiles */

/** The media state field (state.js) that names the stream of a page's screen ('' for none). */
export const SCREEN_FIELD = 'screen';

/**
 * @typedef {Object} Share
 * @property {() => Promise<boolean>} start asks for a screen (needs a user gesture) and shares it
 * @property {() => void} stop stops sharing
 * @property {() => boolean} sharing
 * @property {(r: Remote) => void} peerAdded a person appeared: they get the share if one is on
 * @property {(peerId: string) => void} peerGone
 * @property {(r: Remote, track: MediaStreamTrack, streams: readonly MediaStream[]) => boolean} track
 *   true when the track is a screen (shown on its own tile): the caller leaves it alone
 * @property {(r: Remote, stream: string) => void} announced the stream id r says its screen
 *   goes with ('' for none), from its media state
 * @property {(present: Set<string>) => void} prune screens of peers no longer present go
 * @property {(sender: RTCRtpSender) => boolean} isScreenSender
 * @property {() => {sharing: string, announced: Object<string, string>, seen: Object<string, string[]>, shown: Object<string, string>, events: string[]}} state
 *   what the page knows of the shares: our screen's stream id, the ids each peer announced, the
 *   streams seen and the screens shown, per peer id, and the latest events (for tests and debugging)
 * @property {() => void} close stops sharing and takes the screens down (leaving the call)
 */

/**
 * The call's screen sharing.
 * @param {{tiles: Tiles, remotes: Map<string, Remote>, button: HTMLButtonElement,
 *   announce: (stream: string) => void, onChange?: () => void}} o
 *   button: the control that starts and stops it; announce: tells the room our screen's stream
 *   id ('' for none); onChange: a share started or stopped (local or remote)
 * @returns {Share}
 */
export function callShare(o) {
  const { tiles, remotes, button } = o;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) button.hidden = true; // phones

  /** @type {MediaStream|null} our screen while we share */
  let screen = null;
  /** The stream every share's track is sent with: its id is the one peers are told. */
  const msid = new MediaStream();
  /** @type {Tile|null} */
  let localTile = null;
  /** @type {Map<Peer, RTCRtpSender>} the sender of our screen, per peer */
  const senders = new Map();
  /** @type {WeakSet<RTCRtpSender>} */
  const screenSenders = new WeakSet();
  /** @type {Map<string, string>} the stream id each peer announced as its screen */
  const announced = new Map();
  /** @type {Map<string, Map<string, MediaStream>>} the streams seen from each peer */
  const seen = new Map();
  /** @type {Map<string, {id: string, tile: Tile}>} screens shown, per peer */
  const shown = new Map();
  /** @type {WeakSet<MediaStream>} remote screen streams already watched for removetrack */
  const watched = new WeakSet();
  /** @type {string[]} the latest events, for state() */
  const events = [];
  /** @param {string} e */
  const note = (e) => { events.push(e); if (events.length > 32) events.shift(); };

  /** The spotlight: the latest screen of someone else, else ours, else none. */
  function changed() {
    const remote = [...shown.values()].pop();
    tiles.spotlight(remote ? remote.tile : localTile);
    const n = shown.size + (localTile ? 1 : 0);
    if (n) document.body.dataset.presenting = String(n);
    else delete document.body.dataset.presenting;
    button.setAttribute('aria-pressed', String(!!screen)); // not data-on: red says "off" in the bar
    setLabel(button, screen ? 'Stop sharing' : 'Share screen');
    if (o.onChange) o.onChange();
  }

  /**
   * A tile for a screen: peer '' for ours (with a button to stop).
   * @param {string} caption @param {MediaStream} stream @param {string} peer @returns {Tile}
   */
  function screenTile(caption, stream, peer) {
    const tile = new Tile({ id: peer, name: caption, kind: 'screen' });
    const el = tile.el;
    if (peer) {
      el.dataset.presenter = peer;
    } else {
      delete el.dataset.peer; // not a person's tile
      el.dataset.local = 'true';
    }
    tile.video.muted = true; // a screen has no sound here
    tile.video.srcObject = stream;
    if (!peer) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'stop-share';
      b.textContent = 'Stop sharing';
      b.addEventListener('click', () => stop());
      el.querySelector('figcaption')?.append(b);
    }
    tiles.add(tile);
    tile.video.play().catch(() => { /* muted: plays once frames come */ });
    return tile;
  }

  /** @param {Remote} r */
  function send(r) {
    if (!screen) return;
    const track = screen.getVideoTracks()[0];
    const old = senders.get(r.peer);
    if (old && r.peer.pc.signalingState !== 'closed') {
      // Reuse the transceiver of an earlier share: back to sending.
      const tr = r.peer.pc.getTransceivers().find((t) => t.sender === old);
      old.replaceTrack(track).catch(() => {});
      if (tr && tr.direction === 'recvonly') tr.direction = 'sendrecv';
      else if (tr && tr.direction === 'inactive') tr.direction = 'sendonly';
      return;
    }
    const sender = r.peer.addTrack(track, msid);
    senders.set(r.peer, sender);
    screenSenders.add(sender);
  }

  /** @param {Remote} r */
  function unsend(r) {
    const sender = senders.get(r.peer);
    if (!sender || r.peer.pc.signalingState === 'closed') return;
    try { r.peer.removeTrack(sender); } catch { /* closed meanwhile */ }
  }

  async function start() {
    if (screen) return true;
    /** @type {MediaStream} */
    let s;
    try {
      s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    } catch (e) {
      const err = /** @type {DOMException} */ (e);
      if (err.name !== 'NotAllowedError' && err.name !== 'AbortError') toast(`Cannot share the screen (${err.name}).`, 'error');
      return false; // a cancelled picker is no news
    }
    if (!button.isConnected || screen) { for (const t of s.getTracks()) t.stop(); return !!screen; }
    const track = s.getVideoTracks()[0];
    if (!track) return false;
    // Text stays sharp: under pressure the browser lowers the frame rate, not the resolution.
    if ('contentHint' in track) track.contentHint = 'detail';
    track.addEventListener('ended', () => { if (screen === s) stop(); }); // the browser's "Stop sharing"
    screen = s;
    localTile = screenTile('You are presenting', s, '');
    o.announce(msid.id); // before the tracks: the others know the stream when it comes
    for (const r of remotes.values()) send(r);
    changed();
    return true;
  }

  function stop() {
    if (!screen) return;
    const s = screen;
    screen = null;
    o.announce('');
    for (const r of remotes.values()) unsend(r);
    for (const t of s.getTracks()) t.stop();
    if (localTile) {
      localTile.video.srcObject = null;
      tiles.remove(localTile);
    }
    localTile = null;
    changed();
  }

  /** @param {string} peerId @param {string} why */
  function hide(peerId, why) {
    const sh = shown.get(peerId);
    if (!sh) return;
    note(`hide ${peerId} ${sh.id}: ${why}`);
    shown.delete(peerId);
    sh.tile.video.srcObject = null;
    tiles.remove(sh.tile);
    changed();
  }

  /** @param {Remote} r @param {MediaStream} stream */
  function show(r, stream) {
    const id = r.peer.id;
    const cur = shown.get(id);
    if (cur && cur.id === stream.id) return;
    hide(id, 'another');
    note(`show ${id} ${stream.id}`);
    const tile = screenTile(`${peerName(r.peer)} is presenting`, stream, id);
    shown.set(id, { id: stream.id, tile });
    // The share ends when its track leaves the stream (removeTrack on the other side).
    if (!watched.has(stream)) {
      watched.add(stream);
      stream.addEventListener('removetrack', () => {
        if (stream.getVideoTracks().length === 0 && shown.get(id)?.id === stream.id) hide(id, 'removetrack');
      });
    }
    // A track that reached the person's tile before the state said it is a screen goes back.
    if (r.video.srcObject === stream) {
      const cam = [...(seen.get(id) || new Map()).values()].find((m) => m !== stream && m.getVideoTracks().length > 0);
      r.video.srcObject = cam || null;
    }
    changed();
  }

  button.addEventListener('click', () => {
    if (screen) stop();
    else start().catch(() => {});
  });
  changed();

  return {
    start,
    stop,
    sharing: () => !!screen,
    peerAdded(r) {
      if (screen) send(r);
    },
    peerGone(peerId) {
      for (const p of senders.keys()) if (p.id === peerId) senders.delete(p);
      announced.delete(peerId);
      seen.delete(peerId);
      hide(peerId, 'left');
    },
    track(r, track, streams) {
      const stream = streams[0];
      if (!stream) return false;
      const id = r.peer.id;
      let m = seen.get(id);
      if (!m) seen.set(id, m = new Map());
      if (m.size < 16) m.set(stream.id, stream);
      note(`track ${id} ${stream.id} ${track.kind} announced ${announced.get(id)}`);
      if (announced.get(id) !== stream.id) return false;
      if (track.kind === 'video') show(r, stream);
      return true;
    },
    announced(r, sid) {
      const id = r.peer.id;
      sid = sid.slice(0, 128);
      if ((announced.get(id) || '') === sid) return;
      announced.set(id, sid);
      note(`announced ${id} ${sid}`);
      if (!sid) {
        hide(id, 'state');
        return;
      }
      const stream = seen.get(id)?.get(sid);
      if (stream && stream.getVideoTracks().some((t) => t.readyState === 'live')) show(r, stream);
    },
    prune(present) {
      for (const id of [...shown.keys()]) if (!present.has(id)) hide(id, 'gone');
    },
    isScreenSender: (sender) => screenSenders.has(sender),
    state: () => ({
      sharing: screen ? msid.id : '',
      announced: Object.fromEntries(announced),
      seen: Object.fromEntries([...seen].map(([k, m]) => [k, [...m.keys()]])),
      shown: Object.fromEntries([...shown].map(([k, v]) => [k, v.id])),
      events: events.slice(),
    }),
    close() {
      stop();
      for (const id of [...shown.keys()]) hide(id, 'close');
    },
  };
}
