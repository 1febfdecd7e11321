// app.js: Switchboard's video-call web app (plain ES module, no build step). The landing page
// at / creates or joins a room; /r/{room} is the call: a mesh of one RTCPeerConnection per
// remote peer (through the browser SDK), local preview, a tile per remote peer, mic/camera
// toggles and chat over a data channel labelled "chat". Files dropped on the page (or picked
// with #file-pick) go to every other peer with transfer.js (docs/file-transfer.md, so
// `switchboard send` and `switchboard recv` interoperate); files arriving show in the chat log
// as download links.
//
// An invitation link /r/{room}#token=... joins with the access token in its fragment (see
// access.js: never sent in a request URL); the name then comes from the token, and a refused
// token or a presence the server ended shows a page saying why (view "ended").
//
// Stable hooks for tests and automation: body[data-view] (landing, prompt, call, left, ended),
// body[data-ended] (the error code), body[data-reconnecting] and #conn-state (shown while the
// signaling socket is down; the call goes on),
// body[data-joined], #chat-input, #chat-send, #chat-log li[data-from], .tile[data-peer]
// (data-state, data-route), #mic, #camera, #leave, #file-pick, #file-input,
// #chat-log li.file (data-state: sending, receiving, done, failed) with a.file-link[download]
// for received files, window.switchboardApp.
//
// The call's parts are modules of their own: page.js (views, notices, shared types), media.js
// (camera, microphone, tiles' state), chat.js, files.js (file sharing) and access.js (tokens).
// /files is the file page (codefiles.js): files with a code phrase, to and from another page
// or `switchboard send` / `recv` (wormhole.js).

import { join } from '/sdk/switchboard.js';
import { takeToken, forgetToken, accessMessage, tokenRoomAtRoot } from '/app/access.js';
import { $, show, notice, ended, peerName, serverText } from '/app/page.js';
import { getMedia, play, setState } from '/app/media.js';
import { CHAT_LABEL, MAX_CHAT, callChat } from '/app/chat.js';
import { callFiles } from '/app/files.js';
import { filesPage } from '/app/codefiles.js';

export { humanBytes } from '/app/files.js';

/** Room names the server accepts. */
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_KEY = 'switchboard.name';

/** @typedef {import('/sdk/switchboard.js').Client} Client */
/** @typedef {import('/sdk/switchboard.js').Peer} Peer */
/** @typedef {import('/app/page.js').Remote} Remote */
/** @typedef {import('/app/page.js').CallView} CallView */

/** A random room name such as "k3v9-x2mq". @returns {string} */
export function randomRoom() {
  const abc = 'abcdefghjkmnpqrstuvwxyz23456789';
  const b = crypto.getRandomValues(new Uint8Array(8));
  let s = '';
  for (let i = 0; i < b.length; i++) {
    if (i === 4) s += '-';
    s += abc[b[i] % abc.length];
  }
  return s;
}

function landing() {
  show('landing');
  document.title = 'Switchboard';
  $('create-room').addEventListener('click', () => { location.assign(`/r/${randomRoom()}`); });
  const input = /** @type {HTMLInputElement} */ ($('room-input'));
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = input.value.trim();
    if (!ROOM_RE.test(room)) {
      notice('Room names are 1–64 letters, digits, "_", "-" or ".".');
      return;
    }
    location.assign(`/r/${encodeURIComponent(room)}`);
  });
}

/** @param {string} room */
function prompt(room) {
  return new Promise((resolve) => {
    show('prompt');
    $('prompt-room').textContent = room;
    const input = /** @type {HTMLInputElement} */ ($('name-input'));
    try { input.value = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage blocked */ }
    input.focus();
    $('name-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (name) resolve(name);
    });
  });
}

/**
 * @param {string} room @param {string} name @param {URLSearchParams} params
 * @param {import('/app/access.js').TokenInfo|null} tok the invitation link's token
 */
async function call(room, name, params, tok) {
  show('call');
  document.title = `${room} · Switchboard`;
  $('room-label').textContent = room;
  $('local-name').textContent = `${name} (you)`;
  const grid = $('grid');
  const log = $('chat-log');
  const chatInput = /** @type {HTMLInputElement} */ ($('chat-input'));
  /** @type {Map<string, Remote>} */
  const remotes = new Map();
  /** Peers this page has shown already: one that comes back (our rejoin) is not news. */
  const seen = new Set();
  /** @type {Client|null} */
  let client = null;
  let left = false;

  /** @type {CallView} */
  const view = {
    log,
    remotes,
    me: `${name} (you)`,
    get client() { return client; },
    get left() { return left; },
  };
  const { addChat, attachChat, sendChat } = callChat(view);
  const { receiveFrom, sendFilesToAll, acceptFiles } = callFiles(view);

  const stream = await getMedia();
  const localVideo = /** @type {HTMLVideoElement} */ ($('local-video'));
  if (stream) {
    localVideo.srcObject = stream;
    localVideo.play().catch(() => {});
  } else {
    $('local-state').textContent = 'no camera';
    /** @type {HTMLButtonElement} */ ($('mic')).disabled = true;
    /** @type {HTMLButtonElement} */ ($('camera')).disabled = true;
  }

  /** @param {Peer} peer */
  function onPeer(peer) {
    const tile = document.createElement('figure');
    tile.className = 'tile remote';
    tile.dataset.peer = peer.id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const cap = document.createElement('figcaption');
    const n = document.createElement('span');
    n.className = 'name';
    n.textContent = peerName(peer);
    const st = document.createElement('span');
    st.className = 'state';
    cap.append(n, ' ', st);
    tile.append(video, cap);
    grid.append(tile);
    /** @type {Remote} */
    const r = { peer, tile, video, chat: null, outbox: [], sending: Promise.resolve() };
    remotes.set(peer.id, r);
    setState(r, 'connecting');
    if (!seen.has(peer.id)) addChat(peer.id, '', `${peerName(peer)} is here`, true);
    seen.add(peer.id);

    peer.onConnectionState = (s) => setState(r, s);
    peer.onTrack = (track, streams) => {
      const ms = streams[0] || new MediaStream([track]);
      if (video.srcObject !== ms) {
        if (!streams[0] && video.srcObject instanceof MediaStream) video.srcObject.addTrack(track);
        else video.srcObject = ms;
      }
      play(video, tile);
    };
    peer.onDataChannel = (ch) => { if (ch.label === CHAT_LABEL) attachChat(r, ch); };
    // One chat channel per pair, opened by the side that makes the offers.
    if (!peer.polite) attachChat(r, peer.createDataChannel(CHAT_LABEL, { ordered: true }));
    receiveFrom(r); // after onDataChannel is set: transfer.js passes the other channels on
    if (stream) for (const t of stream.getTracks()) peer.addTrack(t, stream);
  }

  /** @param {Peer} peer @param {string} reason */
  function onPeerLeft(peer, reason) {
    const r = remotes.get(peer.id);
    if (!r) return;
    remotes.delete(peer.id);
    r.video.srcObject = null;
    r.tile.remove();
    // "reconnect": we rejoined under a new id and connect to everyone again.
    if (reason !== 'reconnect') addChat(peer.id, '', `${peerName(peer)} left`, true);
  }

  acceptFiles();

  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = chatInput.value.trim();
    if (!text || !client) return;
    chatInput.value = '';
    sendChat(text);
  });

  $('mic').addEventListener('click', () => {
    if (!stream) return;
    const tracks = stream.getAudioTracks();
    const muted = tracks.some((t) => t.enabled);
    for (const t of tracks) t.enabled = !muted;
    $('mic').setAttribute('aria-pressed', String(muted));
    $('mic').textContent = muted ? 'Unmute' : 'Mute';
  });
  $('camera').addEventListener('click', () => {
    if (!stream) return;
    const tracks = stream.getVideoTracks();
    const off = tracks.some((t) => t.enabled);
    for (const t of tracks) t.enabled = !off;
    $('camera').setAttribute('aria-pressed', String(off));
    $('camera').textContent = off ? 'Camera on' : 'Camera off';
    $('local-state').textContent = off ? 'camera off' : '';
  });
  // An invitation link is personal (one identity per link): there is no shared link to copy.
  $('copy-link').hidden = !!tok;
  $('copy-link').addEventListener('click', () => {
    const url = `${location.origin}/r/${encodeURIComponent(room)}`;
    if (navigator.clipboard) {
      navigator.clipboard.writeText(url).then(() => notice('Link copied.', 'info'), () => notice(`Share this link: ${url}`, 'info'));
    } else {
      notice(`Share this link: ${url}`, 'info');
    }
  });

  function leave() {
    if (left) return;
    left = true;
    if (client) client.close();
    client = null;
    $('conn-state').hidden = true;
    delete document.body.dataset.reconnecting;
    if (stream) for (const t of stream.getTracks()) t.stop();
    for (const r of remotes.values()) r.tile.remove();
    remotes.clear();
    document.body.dataset.joined = 'false';
    const q = new URLSearchParams(params);
    if (!tok) q.set('name', name); // with a token, the name is the token's and the tab keeps it
    /** @type {HTMLAnchorElement} */ ($('rejoin')).href = `/r/${encodeURIComponent(room)}?${q}`;
    show('left');
  }
  $('leave').addEventListener('click', leave);
  window.addEventListener('pagehide', () => { if (client) client.close(); });

  /**
   * The call cannot go on for an access reason: stop everything and say why.
   * @param {string} code @param {{title: string, text: string}} msg
   */
  function endWith(code, msg) {
    if (code.startsWith('token-') || code.endsWith('-not-granted')) forgetToken(room);
    leave();
    ended(code, msg);
  }

  const wsUrl = location.origin.replace(/^http/, 'ws') + '/ws';
  try {
    client = await join(wsUrl, room, {
      name,
      token: tok ? tok.token : undefined,
      onPeer,
      onPeerLeft,
      onPeerUpdated(peer) {
        const r = remotes.get(peer.id);
        const label = r && r.tile.querySelector('.name');
        if (label) label.textContent = peerName(peer);
      },
      onServerMessage(data) {
        addChat('', '', `Message from the organiser: ${serverText(data).slice(0, MAX_CHAT)}`, true);
      },
      onError(peer, err) {
        if (!peer) return; // signaling problems are reported by onClose
        // A pair's trouble shows on its tile; details go to the console as a warning.
        console.warn('switchboard:', peer.id, err.message);
        const r = remotes.get(peer.id);
        if (r && /failed/.test(err.message)) setState(r, 'failed');
      },
      onReconnecting() {
        if (left) return;
        // Calls in progress go on; only new peers and renegotiations wait. A discreet badge
        // in a corner: nothing on the page moves.
        $('conn-state').hidden = false;
        document.body.dataset.reconnecting = 'true';
      },
      onReconnected() {
        if (left) return;
        $('conn-state').hidden = true;
        delete document.body.dataset.reconnecting;
      },
      onClose() {
        if (left) return;
        const err = client && client.error;
        const msg = err && accessMessage(err.code, true);
        if (err && msg) {
          endWith(err.code, msg);
          return;
        }
        $('conn-state').hidden = true;
        delete document.body.dataset.reconnecting;
        notice('Disconnected from the server. Reload the page to rejoin.');
        document.body.dataset.joined = 'false';
        for (const r of remotes.values()) setState(r, 'disconnected');
      },
    });
  } catch (e) {
    const err = /** @type {Error & {code?: string}} */ (e);
    const msg = err.code ? accessMessage(err.code, false) : null;
    if (err.code && msg) {
      endWith(err.code, msg);
      document.body.dataset.joined = 'error';
      return;
    }
    if (err.code === 'room-full') notice('This room is full.');
    else if (err.code) notice(`The server refused to join: ${err.code}.`);
    else notice('Cannot reach the Switchboard server. Check your connection and reload the page.');
    document.body.dataset.joined = 'error';
    return;
  }
  if (left) { client.close(); return; }
  document.body.dataset.joined = 'true';
  /** @type {any} */ (window).switchboardApp = { client, remotes, stream, leave, sendChat, sendFiles: sendFilesToAll };
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (location.pathname === '/files') {
    filesPage(); // files with a code (codefiles.js)
    return;
  }
  const m = location.pathname.match(/^\/r\/([^/]+)$/);
  if (!m) {
    // An invitation link to the server's root opens the token's room.
    const tokenRoom = location.pathname === '/' ? tokenRoomAtRoot() : '';
    if (tokenRoom) {
      location.replace(`/r/${tokenRoom}${location.hash}`);
      return;
    }
    landing();
    return;
  }
  let room = '';
  try { room = decodeURIComponent(m[1]); } catch { /* bad escape: fails the check below */ }
  if (!ROOM_RE.test(room)) {
    landing();
    notice('That room name is not valid: use 1–64 letters, digits, "_", "-" or ".".');
    return;
  }
  const tok = takeToken(room);
  if (tok) {
    // The server shows the token's name (or identity) to the others: no prompt.
    await call(room, (tok.name || tok.sub || 'You').slice(0, 64), params, tok);
    return;
  }
  let name = (params.get('name') || '').trim().slice(0, 64);
  if (!name) name = await prompt(room);
  try { localStorage.setItem(NAME_KEY, name); } catch { /* storage blocked */ }
  await call(room, name, params, null);
}

/** @type {any} */ (window).switchboardApp = null;
main().catch((e) => {
  notice(`Something went wrong: ${e instanceof Error ? e.message : e}`);
});
