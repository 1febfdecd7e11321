// app.js: Switchboard's video-call web app (plain ES module, no build step). The landing page
// at / creates or joins a room; /r/{room} opens the pre-join screen (prejoin.js: preview,
// microphone level, device pickers, name), then the call: a mesh of one RTCPeerConnection per
// remote peer (through the browser SDK), a tile per person laid out over the whole stage
// (tiles.js), the controls bar at the bottom (controls.js: microphone, camera, chat, link,
// files, devices, shortcuts, Leave), chat over a data channel labelled "chat" (chat.js) and
// files dropped on the page or picked (files.js, transfer.js: docs/file-transfer.md). Each
// page tells the others whether its microphone and camera are on (state.js), so they show a
// microphone-off sign, or initials and the name instead of a black picture.
//
// /r/{room}?name=NAME joins at once with the remembered devices (links made for a person, the
// Rejoin link, automation). An invitation link /r/{room}#token=... joins with the access
// token in its fragment (see access.js: never sent in a request URL); its pre-join screen
// shows the token's name, and a refused token or a presence the server ended shows a page
// saying why (view "ended").
//
// A signaling reconnect changes nothing on screen but the "Reconnecting…" badge: a resumed
// presence keeps every pair; when this page must rejoin under a new id, or another person's
// page does (same tab, new id: meta.tab, or the token's identity), the person's tile, its
// signs and the chat stay, and no "left" or "joined" line appears (a tile waits RETURN_MS).
//
// Stable hooks for tests and automation: body[data-view] (landing, prejoin, call, left,
// ended), body[data-ended] (the error code), body[data-reconnecting] and #conn-state,
// body[data-joined], #toasts .toast, #announcer, #chat-input, #chat-send, #chat-log
// li[data-from], .tile[data-peer] (see tiles.js), #mic, #camera, #chat-toggle, #devices
// (#call-camera, #call-mic, #call-speaker), #help (#help-dialog), #leave, #file-pick,
// #file-input, #chat-log li.file (data-state: sending, receiving, done, failed) with
// a.file-link[download] for received files, window.switchboardApp.
//
// Modules that add to the call (screen share, active speaker, quality, bitrate) are install
// functions in EXTENSIONS: each gets the CallApi once the call's page is up.

import { join } from '/sdk/switchboard.js';
import { takeToken, forgetToken, accessMessage, tokenRoomAtRoot } from '/app/access.js';
import { $, show, toast, clearToasts, announce, ended, peerName, serverText } from '/app/page.js';
import { LocalMedia, play, preview, route } from '/app/media.js';
import { openMedia, problemText, fillPickers, deviceOf, recall } from '/app/devices.js';
import { prejoin } from '/app/prejoin.js';
import { Tile, Tiles } from '/app/tiles.js';
import { Controls, setLabel } from '/app/controls.js';
import { CallState } from '/app/state.js';
import { CHAT_LABEL, MAX_CHAT, callChat } from '/app/chat.js';
import { callFiles } from '/app/files.js';
import { filesPage } from '/app/codefiles.js';
import { installCallMedia } from '/app/callmedia.js';

export { humanBytes } from '/app/files.js';

/** Room names the server accepts. */
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_KEY = 'switchboard.name';
/** How long the tile of a person whose connection dropped waits for them to come back. */
const RETURN_MS = 10000;
/** This page load, told to the others in the join's meta: a rejoin under a new id is still us. */
const TAB = Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, '0')).join('');

/** @typedef {import('/sdk/switchboard.js').Client} Client */
/** @typedef {import('/sdk/switchboard.js').Peer} Peer */
/** @typedef {import('/app/page.js').Remote} Remote */
/** @typedef {import('/app/page.js').CallView} CallView */
/** @typedef {import('/app/prejoin.js').Ready} Ready */

/**
 * What a module that adds to the call gets (EXTENSIONS).
 * @typedef {Object} CallApi
 * @property {Tiles} tiles the stage: add(tile), remove(tile), spotlight(tile|null)
 * @property {Tile} localTile
 * @property {Controls} controls the bar: add({id, label, icon, key, onClick}), shortcut(...)
 * @property {CallState} state set({field: value}) tells the room; onChange(fn) hears the others
 * @property {LocalMedia} media the local camera and microphone
 * @property {Map<string, Remote>} remotes the remote people, by peer id
 * @property {() => Client|null} client
 * @property {(fn: (r: Remote) => void) => void} onRemote a remote person appears (tile made)
 * @property {(fn: (r: Remote, reason: string) => void) => void} onRemoteGone they left for good
 * @property {(fn: (r: Remote, track: MediaStreamTrack, streams: readonly MediaStream[]) => boolean) => void} claimTrack
 *   fn sees each remote track first and returns true to keep it (e.g. a shared screen):
 *   then the person's tile does not show it
 * @property {(fn: () => void) => void} onLeave the call ends here (left, or ended): stop what runs
 */

/**
 * The extensions: each may return an object whose fields join window.switchboardApp (for tests).
 * callmedia.js: screen share, active speaker, quality, bitrate caps (docs/web-app-media.md).
 * @type {Array<(api: CallApi) => (Object<string, any>|void)>}
 */
const EXTENSIONS = [installCallMedia];

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
      toast('Room names are 1–64 letters, digits, "_", "-" or ".".');
      return;
    }
    location.assign(`/r/${encodeURIComponent(room)}`);
  });
}

/**
 * @param {string} room @param {Ready} ready @param {URLSearchParams} params
 * @param {import('/app/access.js').TokenInfo|null} tok the invitation link's token
 */
async function call(room, ready, params, tok) {
  const name = ready.name;
  // Joining starts first: the socket connects while the view is built. Should building it
  // throw, the joined client is closed (no one left in the room without a page).
  const joining = join(location.origin.replace(/^http/, 'ws') + '/ws', room, joinOptions());
  let built = false;
  joining.then((c) => { if (!built) c.close(); }, () => {});
  show('call');
  document.title = `${room} · Switchboard`;
  $('room-label').textContent = room;
  const log = $('chat-log');
  const chatInput = /** @type {HTMLInputElement} */ ($('chat-input'));
  /** @type {Map<string, Remote & {key: string}>} */
  const remotes = new Map();
  /** Tiles of people whose connection dropped, by key, while they may come back. */
  /** @type {Map<string, {r: Remote & {key: string}, timer: ReturnType<typeof setTimeout>}>} */
  const parked = new Map();
  /** Old ids of people already back under a new one: their departure is no news. */
  const superseded = new Set();
  /** @type {Client|null} */
  let client = null;
  let left = false;
  const hooks = {
    /** @type {Array<(r: Remote) => void>} */ remote: [],
    /** @type {Array<(r: Remote, reason: string) => void>} */ gone: [],
    /** @type {Array<(r: Remote, t: MediaStreamTrack, s: readonly MediaStream[]) => boolean>} */ track: [],
    /** @type {Array<() => void>} */ leave: [],
  };

  const tiles = new Tiles($('grid'));
  const media = new LocalMedia(ready.stream, { mic: ready.mic, cam: ready.cam, speaker: ready.speaker });
  const localTile = new Tile({ id: '', name: `${name} (you)`, local: true, element: $('local-tile') });
  localTile.el.querySelector('.name')?.setAttribute('id', 'local-name');
  preview(localTile.video, media.stream);
  tiles.add(localTile);
  const state = new CallState({ mic: media.mic && !!media.audio, cam: media.cam && !!media.video });
  const controls = new Controls();

  /** @type {CallView} */
  const view = {
    log,
    remotes,
    away: () => [...parked.values()].map((p) => p.r),
    me: `${name} (you)`,
    get client() { return client; },
    get left() { return left; },
  };
  const chatPanel = $('chat-panel'), chatToggle = $('chat-toggle'), unread = $('chat-unread');
  let unseen = 0;
  const { addChat, attachChat, sendChat } = callChat(view, {
    onMessage() {
      if (!chatPanel.hidden) return;
      unseen++;
      unread.textContent = String(unseen);
      unread.hidden = false;
      setLabel(chatToggle, `Chat (${unseen} new)`);
    },
  });
  const { receiveFrom, sendFilesToAll, acceptFiles } = callFiles(view);

  /** Opens or closes the chat (open at first on a wide screen). @param {boolean} open */
  const setChat = (open) => {
    chatPanel.hidden = !open;
    chatToggle.setAttribute('aria-expanded', String(open));
    document.body.dataset.chat = open ? 'open' : 'closed';
    if (open) {
      unseen = 0;
      unread.hidden = true;
      setLabel(chatToggle, 'Chat');
    }
    tiles.layout();
  };
  setChat(window.matchMedia('(min-width: 900px)').matches);
  chatToggle.addEventListener('click', () => {
    setChat(chatPanel.hidden);
    if (!chatPanel.hidden) chatInput.focus();
  });
  $('chat-close').addEventListener('click', () => { setChat(false); chatToggle.focus(); });

  /** Shows the local state on the local tile and the buttons. */
  const renderLocal = () => {
    const a = media.audio, v = media.video;
    const micOn = media.mic && !!a, camOn = media.cam && !!v;
    localTile.setMic(micOn);
    localTile.setCam(camOn);
    const mic = $('mic'), cam = $('camera');
    mic.dataset.on = String(micOn);
    cam.dataset.on = String(camOn);
    setLabel(mic, !a ? 'Turn microphone on' : micOn ? 'Mute' : 'Unmute', micOn ? 'mic' : 'mic-off');
    setLabel(cam, camOn ? 'Turn camera off' : 'Turn camera on', camOn ? 'cam' : 'cam-off');
  };

  /** The peers of the call now (those made since the join began included). */
  const peers = () => [...remotes.values()].map((r) => r.peer);

  /**
   * Turns the microphone ('audio') or camera ('video') on or off; with no such device yet
   * (refused or absent at the start), asks the browser again and sends it to everyone.
   * @param {'audio'|'video'} kind
   */
  async function toggle(kind) {
    try {
      if (kind === 'video') {
        await media.toggleCam(peers); // off stops the camera (its light goes off); on opens it again
      } else if (!media.audio) {
        await media.switchDevice('audio', await recall('mic'), peers);
        media.setMic(true);
      } else {
        media.setMic(!media.mic);
      }
    } catch (e) {
      const err = /** @type {Error} */ (e);
      toast(problemText({ stream: media.stream, videoError: kind === 'video' ? err : null, audioError: kind === 'audio' ? err : null }, true));
      return;
    }
    preview(localTile.video, media.stream);
    renderLocal();
    state.set({ mic: media.mic && !!media.audio, cam: media.cam && !!media.video });
    if (kind === 'audio') announce(media.mic ? 'Microphone on' : 'Microphone off');
    else announce(media.cam ? 'Camera on' : 'Camera off');
  }
  renderLocal();

  /** Applies a remote person's state to their tile. @param {Remote} r */
  const showState = (r) => {
    const s = state.remote.get(r.peer.id);
    r.tile.setMic(!s || s.mic !== false);
    r.tile.setCam(!s || s.cam !== false);
  };
  state.onChange((id) => { const r = remotes.get(id); if (r) showState(r); });

  /** @param {Peer} peer @returns {string} what stays the same when the person rejoins */
  const keyOf = (peer) => (peer.meta && typeof peer.meta.tab === 'string' && peer.meta.tab) || peer.identity || peer.id;

  /** @param {Peer} peer */
  function onPeer(peer) {
    const key = keyOf(peer);
    // The same person under a new id: its old presence still listed, or its tile waiting.
    /** @type {(Remote & {key: string})|undefined} */
    let was = [...remotes.values()].find((x) => x.key === key && x.peer.id !== peer.id);
    if (was) {
      remotes.delete(was.peer.id);
      superseded.add(was.peer.id);
    } else {
      const p = parked.get(key);
      if (p) { clearTimeout(p.timer); parked.delete(key); was = p.r; }
    }
    let tile;
    if (was) {
      tile = was.tile;
      tile.el.dataset.peer = peer.id;
      tile.setName(peerName(peer));
      state.move(was.peer.id, peer.id);
    } else {
      tile = new Tile({ id: peer.id, name: peerName(peer) });
      tile.el.dataset.video = 'none';
      tiles.add(tile);
      addChat(peer.id, '', `${peerName(peer)} joined`, true);
      announce(`${peerName(peer)} joined the call`);
    }
    const video = tile.video;
    /** @type {Remote & {key: string}} */
    // What was said while they were away waits for the new chat channel.
    const r = { peer, key, tile, video, chat: null, outbox: was ? was.outbox.splice(0) : [], sending: Promise.resolve() };
    remotes.set(peer.id, r);
    tile.setState('connecting');
    showState(r);
    media.sinkTo(video);

    const mine = () => remotes.get(peer.id) === r; // not an old presence's late event
    peer.onConnectionState = (s) => {
      if (!mine()) return;
      tile.setState(s);
      if (s === 'connected') route(peer.pc).then((how) => { if (how && tile.el.dataset.state === 'connected') tile.setRoute(how); }, () => {});
    };
    peer.onTrack = (track, streams) => {
      if (!mine()) return;
      for (const fn of hooks.track) if (fn(r, track, streams)) return;
      const ms = streams[0] || new MediaStream([track]);
      if (video.srcObject !== ms) {
        if (!streams[0] && video.srcObject instanceof MediaStream) video.srcObject.addTrack(track);
        else video.srcObject = ms;
      }
      if (track.kind === 'video') tile.el.dataset.video = 'live';
      play(video, tile.el);
    };
    peer.onMessage = (data) => { state.receive(peer, data); };
    peer.onDataChannel = (ch) => { if (ch.label === CHAT_LABEL) attachChat(r, ch); };
    // One chat channel per pair, opened by the side that makes the offers.
    if (!peer.polite) attachChat(r, peer.createDataChannel(CHAT_LABEL, { ordered: true }));
    receiveFrom(r); // after onDataChannel is set: transfer.js passes the other channels on
    media.sendTo(peer);
    state.hello(peer);
    for (const fn of hooks.remote) fn(r);
  }

  /** A person is gone for good: their tile goes, and the chat says so. @param {Remote & {key: string}} r @param {string} reason */
  function drop(r, reason) {
    state.forget(r.peer.id);
    r.video.srcObject = null;
    tiles.remove(r.tile);
    for (const fn of hooks.gone) fn(r, reason);
    if (left) return;
    addChat(r.peer.id, '', `${peerName(r.peer)} left`, true);
    announce(`${peerName(r.peer)} left the call`);
  }

  /** @param {Peer} peer @param {string} reason */
  function onPeerLeft(peer, reason) {
    if (superseded.delete(peer.id)) return; // back under a new id already
    const r = remotes.get(peer.id);
    if (!r) return;
    remotes.delete(peer.id);
    if (reason === 'left' || reason === 'kicked' || left) {
      drop(r, reason);
      return;
    }
    // We rejoined ("reconnect"), or their connection dropped: they may well be back soon.
    r.tile.setState('reconnecting');
    const old = parked.get(r.key);
    if (old) { clearTimeout(old.timer); drop(old.r, reason); }
    parked.set(r.key, { r, timer: setTimeout(() => { parked.delete(r.key); drop(r, reason); }, RETURN_MS) });
  }

  acceptFiles();

  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = chatInput.value.trim();
    if (!text || !client) return;
    chatInput.value = '';
    sendChat(text);
  });

  const micBtn = $('mic'), camBtn = $('camera');
  micBtn.addEventListener('click', () => { toggle('audio'); });
  camBtn.addEventListener('click', () => { toggle('video'); });
  controls.shortcut('m', 'Mute or unmute the microphone', () => micBtn.click(), micBtn);
  controls.shortcut('v', 'Turn the camera off or on', () => camBtn.click(), camBtn);
  controls.shortcut('c', 'Open or close the chat', () => chatToggle.click(), chatToggle);
  // "s" is share.js's (screen share), added with controls.add.
  controls.shortcut('shift+l', 'Leave the call', () => $('leave').click(), $('leave'));
  controls.shortcut('?', 'Show these shortcuts', () => controls.help(), $('help'));
  $('help').addEventListener('click', () => controls.help());
  renderLocal(); // the buttons' titles now name their shortcuts

  // Devices mid-call: the pickers of #devices-dialog switch without a new offer.
  const devDialog = /** @type {HTMLDialogElement} */ ($('devices-dialog'));
  const pickers = {
    camera: /** @type {HTMLSelectElement} */ ($('call-camera')),
    mic: /** @type {HTMLSelectElement} */ ($('call-mic')),
    speaker: /** @type {HTMLSelectElement} */ ($('call-speaker')),
  };
  const fillNow = () => fillPickers(pickers, { camera: media.cameraId, mic: deviceOf(media.audio), speaker: media.speaker });
  $('devices').addEventListener('click', () => { fillNow().then(() => devDialog.showModal()); });
  /** @param {'video'|'audio'} kind @param {HTMLSelectElement} sel */
  const switchTo = async (kind, sel) => {
    try {
      await media.switchDevice(kind, sel.value, peers, sel.selectedOptions[0]?.textContent || '');
      preview(localTile.video, media.stream);
      renderLocal();
      state.set({ mic: media.mic && !!media.audio, cam: media.cam && !!media.video });
    } catch (e) {
      const err = /** @type {Error} */ (e);
      toast(problemText({ stream: media.stream, videoError: kind === 'video' ? err : null, audioError: kind === 'audio' ? err : null }, true));
      fillNow();
    }
  };
  pickers.camera.addEventListener('change', () => { switchTo('video', pickers.camera); });
  pickers.mic.addEventListener('change', () => { switchTo('audio', pickers.mic); });
  pickers.speaker.addEventListener('change', () => {
    media.setSpeaker(pickers.speaker.value, pickers.speaker.selectedOptions[0]?.textContent || '', [...remotes.values()].map((r) => r.video));
  });

  // An invitation link is personal (one identity per link): there is no shared link to copy.
  $('copy-link').hidden = !!tok;
  $('copy-link').addEventListener('click', () => {
    const url = `${location.origin}/r/${encodeURIComponent(room)}`;
    if (navigator.clipboard) {
      navigator.clipboard.writeText(url).then(() => toast('Link copied.', 'info'), () => toast(`Share this link: ${url}`, 'info', 10000));
    } else {
      toast(`Share this link: ${url}`, 'info', 10000);
    }
  });

  const badge = $('conn-state');
  /** @param {string} text shown in the corner ('' hides it) */
  const setBadge = (text) => {
    if (text) badge.textContent = text;
    badge.hidden = !text;
    if (text) document.body.dataset.reconnecting = 'true';
    else delete document.body.dataset.reconnecting;
  };

  function leave() {
    if (left) return;
    left = true;
    controls.enable(false);
    state.attach(null);
    if (client) client.close();
    client = null;
    setBadge('');
    for (const fn of hooks.leave) fn();
    media.stop();
    for (const p of parked.values()) clearTimeout(p.timer);
    parked.clear();
    for (const r of remotes.values()) r.tile.el.remove();
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

  /** @type {CallApi} */
  const api = {
    tiles, localTile, controls, state, media, remotes, client: () => client,
    onRemote: (fn) => { hooks.remote.push(fn); },
    onRemoteGone: (fn) => { hooks.gone.push(fn); },
    claimTrack: (fn) => { hooks.track.push(fn); },
    onLeave: (fn) => { hooks.leave.push(fn); },
  };
  /** @type {Object<string, any>} what the extensions give window.switchboardApp */
  const extras = {};
  for (const install of EXTENSIONS) Object.assign(extras, install(api) || {});

  /**
   * The join's options, taken at the top of call() before the view is built (the socket
   * connects meanwhile): its callbacks run on the socket's events, after call()'s first await.
   * @returns {import('/sdk/switchboard.js').JoinOptions}
   */
  function joinOptions() {
    return {
      name,
      meta: { tab: TAB },
      token: tok ? tok.token : undefined,
      onPeer,
      onPeerLeft,
      onPeerUpdated(peer) {
        const r = remotes.get(peer.id);
        if (r) r.tile.setName(peerName(peer));
      },
      onServerMessage(data) {
        addChat('', '', `Message from the organiser: ${serverText(data).slice(0, MAX_CHAT)}`, true);
        announce(`Message from the organiser: ${serverText(data).slice(0, 200)}`);
      },
      onError(peer, err) {
        if (!peer) return; // signaling problems are reported by onClose
        // A pair's trouble shows on its tile; details go to the console as a warning.
        console.warn('switchboard:', peer.id, err.message);
        const r = remotes.get(peer.id);
        if (r && /failed/.test(err.message)) r.tile.setState('failed');
      },
      onReconnecting() {
        // Calls in progress go on; only new peers and renegotiations wait. A discreet badge
        // in a corner: nothing on the page moves.
        if (!left) setBadge('Reconnecting… your call goes on');
      },
      onReconnected() {
        if (!left) setBadge('');
      },
      onClose() {
        if (left) return;
        const err = client && client.error;
        const msg = err && accessMessage(err.code, true);
        if (err && msg) {
          endWith(err.code, msg);
          return;
        }
        setBadge('Disconnected — reload the page to rejoin');
        toast('Lost the connection to the server. Reload the page to rejoin the call.');
        document.body.dataset.joined = 'false';
        for (const r of remotes.values()) r.tile.setState('closed');
      },
    };
  }
  built = true;
  try {
    client = await joining;
  } catch (e) {
    const err = /** @type {Error & {code?: string}} */ (e);
    const msg = err.code ? accessMessage(err.code, false) : null;
    if (err.code && msg) {
      endWith(err.code, msg);
      document.body.dataset.joined = 'error';
      return;
    }
    if (err.code === 'room-full') toast('This room is full.', 'error', 15000);
    else if (err.code) toast(`The server refused to join: ${err.code}.`, 'error', 15000);
    else toast('Cannot reach the Switchboard server. Check your connection and reload the page.', 'error', 15000);
    setBadge('Not connected');
    document.body.dataset.joined = 'error';
    return;
  }
  if (left) { client.close(); return; }
  state.attach(client);
  document.body.dataset.joined = 'true';
  /** @type {any} */ (window).switchboardApp = {
    client, remotes, get stream() { return media.stream; }, media, tiles, controls, state, leave, sendChat, sendFiles: sendFilesToAll,
    ...extras,
  };
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
    toast('That room name is not valid: use 1–64 letters, digits, "_", "-" or ".".');
    return;
  }
  const tok = takeToken(room);
  let name = (params.get('name') || '').trim().slice(0, 64);
  if (name && !tok) {
    // Straight in, with the remembered devices; what is missing is said once in the call.
    const got = await openMedia();
    try { localStorage.setItem(NAME_KEY, name); } catch { /* storage blocked */ }
    const call$ = call(room, { name, stream: got.stream, mic: true, cam: true, speaker: await recall('speaker') }, params, null);
    const problem = problemText(got, true);
    if (problem) toast(problem, 'error', 12000);
    await call$;
    return;
  }
  if (tok) {
    // The server shows the token's name (or identity) to the others.
    name = (tok.name || tok.sub || 'You').slice(0, 64);
  } else {
    try { name = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage blocked */ }
  }
  const ready = await prejoin(room, { name, fixedName: !!tok });
  if (!tok) {
    try { localStorage.setItem(NAME_KEY, ready.name); } catch { /* storage blocked */ }
  }
  clearToasts();
  await call(room, ready, params, tok);
}

/** @type {any} */ (window).switchboardApp = null;
main().catch((e) => {
  toast(`Something went wrong: ${e instanceof Error ? e.message : e}`);
});
