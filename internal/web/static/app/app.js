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
// body[data-ended] (the error code),
// body[data-joined], #chat-input, #chat-send, #chat-log li[data-from], .tile[data-peer]
// (data-state, data-route), #mic, #camera, #leave, #file-pick, #file-input,
// #chat-log li.file (data-state: sending, receiving, done, failed) with a.file-link[download]
// for received files, window.switchboardApp.

import { join } from '/sdk/switchboard.js';
import { sendFiles, receiveFiles } from '/sdk/transfer.js';
import { takeToken, forgetToken, accessMessage, tokenRoomAtRoot } from '/app/access.js';

/** Room names the server accepts. */
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_KEY = 'switchboard.name';
const CHAT_LABEL = 'chat';
const MAX_CHAT = 1000;

/** @typedef {import('/sdk/switchboard.js').Client} Client */
/** @typedef {import('/sdk/switchboard.js').Peer} Peer */

/**
 * @typedef {Object} Remote
 * @property {Peer} peer
 * @property {HTMLElement} tile
 * @property {HTMLVideoElement} video
 * @property {RTCDataChannel|null} chat
 * @property {string[]} outbox chat messages waiting for the channel to open
 * @property {Promise<void>} sending the file transfers to this peer, one after the other
 */

/** @param {number} n @returns {string} a size such as "1.5 MiB" */
export function humanBytes(n) {
  if (n < 1024) return `${n} B`;
  let v = n, i = -1;
  while (v >= 1024 && i < 4) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${'KMGTP'[i]}iB`;
}

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/** @param {string} view */
function show(view) {
  for (const id of ['landing', 'prompt', 'call', 'left', 'ended']) $(id).hidden = id !== view;
  document.body.dataset.view = view;
}

/** @param {string} text @param {'error'|'info'} [kind] */
function notice(text, kind = 'error') {
  const el = $('notice');
  el.textContent = text;
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

/**
 * Shows why the call cannot go on (a refused link, replaced, removed, room closed).
 * @param {string} code @param {{title: string, text: string}} msg
 */
function ended(code, msg) {
  notice('');
  show('ended');
  document.body.dataset.ended = code;
  document.title = `${msg.title} · Switchboard`;
  $('ended-title').textContent = msg.title;
  $('ended-text').textContent = msg.text;
}

/** The name a peer is shown under. @param {Peer} peer @returns {string} */
function peerName(peer) {
  return peer.name || peer.identity || 'Anonymous';
}

/** Shows a server message (from the application, through the server API) in text. @param {any} data */
function serverText(data) {
  if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
  if (typeof data === 'string') return data;
  return JSON.stringify(data);
}

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

/** @returns {Promise<MediaStream|null>} */
async function getMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    notice('Camera and microphone need a secure page (HTTPS or localhost). You can still chat and see the others.');
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (e) {
    const err = /** @type {DOMException} */ (e);
    if (err.name === 'NotAllowedError' || err.name === 'SecurityError') {
      notice('Camera and microphone access was denied. You joined without them: you can still see and hear the others and chat. Allow access in the browser and rejoin to send video.');
    } else if (err.name === 'NotFoundError' || err.name === 'OverconstrainedError') {
      notice('No camera or microphone was found. You can still see and hear the others and chat.');
    } else if (err.name === 'NotReadableError') {
      notice('The camera or microphone is in use by another application. You can still see and hear the others and chat.');
    } else {
      notice(`Cannot use the camera or microphone (${err.name}). You can still see and hear the others and chat.`);
    }
    return null;
  }
}

/** @param {HTMLVideoElement} video @param {HTMLElement} tile */
function play(video, tile) {
  video.play().catch(() => {
    // Autoplay with sound refused: play muted and offer to unmute.
    video.muted = true;
    video.play().catch(() => { /* not playable yet; srcObject changes retry */ });
    if (tile.querySelector('.unmute')) return;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'unmute';
    b.textContent = 'Unmute';
    b.addEventListener('click', () => { video.muted = false; video.play().catch(() => {}); b.remove(); });
    tile.append(b);
  });
}

/**
 * The route of a connected pair: "relay" when either selected candidate is a TURN relay.
 * @param {RTCPeerConnection} pc @returns {Promise<string>}
 */
async function route(pc) {
  const stats = await pc.getStats();
  /** @type {any} */
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) return '';
  const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
  return (l && l.candidateType === 'relay') || (r && r.candidateType === 'relay') ? 'relay' : 'direct';
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
  /** @type {Client|null} */
  let client = null;
  let left = false;

  /** @param {string} from @param {string} who @param {string} text @param {boolean} [sys] */
  function addChat(from, who, text, sys = false) {
    const li = document.createElement('li');
    li.dataset.from = from;
    if (sys) {
      li.className = 'sys';
      li.textContent = text;
    } else {
      const w = document.createElement('span');
      w.className = 'who';
      w.textContent = who;
      const t = document.createElement('span');
      t.className = 'text';
      t.textContent = text;
      li.append(w, t);
    }
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(li);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  /**
   * A chat log entry for one file: who, name, size, a progress bar and a status.
   * @param {string} from @param {string} who @param {string} fileName @param {number} size @param {string} state
   */
  function addFile(from, who, fileName, size, state) {
    const li = document.createElement('li');
    li.className = 'file';
    li.dataset.from = from;
    li.dataset.state = state;
    const w = document.createElement('span');
    w.className = 'who';
    w.textContent = who;
    const n = document.createElement('span');
    n.className = 'file-name';
    n.textContent = fileName;
    const z = document.createElement('span');
    z.className = 'file-size';
    z.textContent = ` (${humanBytes(size)})`;
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = 0;
    const st = document.createElement('span');
    st.className = 'file-state';
    li.append(w, n, z, bar, st);
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(li);
    if (atBottom) log.scrollTop = log.scrollHeight;
    return {
      li,
      /** @param {number} frac @param {string} text */
      progress(frac, text) {
        bar.value = Math.max(0, Math.min(1, frac));
        st.textContent = text;
      },
      /** @param {string} url */
      link(url) {
        const a = document.createElement('a');
        a.className = 'file-link';
        a.href = url;
        a.download = fileName;
        a.textContent = fileName;
        n.replaceChildren(a);
      },
      /** @param {'done'|'failed'} s @param {string} text */
      end(s, text) {
        li.dataset.state = s;
        bar.remove();
        st.textContent = text;
      },
    };
  }

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

  /** @param {Remote} r @param {string} state */
  function setState(r, state) {
    const label = /** @type {HTMLElement} */ (r.tile.querySelector('.state'));
    r.tile.dataset.state = state;
    if (state === 'connected') {
      label.textContent = 'connected';
      route(r.peer.pc).then((how) => {
        if (!how || r.tile.dataset.state !== 'connected') return;
        r.tile.dataset.route = how;
        label.textContent = `connected · ${how}`;
      }).catch(() => {});
    } else if (state === 'new') {
      label.textContent = 'connecting';
    } else {
      label.textContent = state;
    }
  }

  /** @param {Remote} r @param {RTCDataChannel} ch */
  function attachChat(r, ch) {
    r.chat = ch;
    ch.onopen = () => {
      for (const m of r.outbox.splice(0)) ch.send(m);
    };
    ch.onmessage = (ev) => {
      let text = '';
      try { text = String(JSON.parse(ev.data).text ?? ''); } catch { return; }
      if (text) addChat(r.peer.id, peerName(r.peer), text.slice(0, MAX_CHAT));
    };
    if (ch.readyState === 'open') ch.onopen(new Event('open'));
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
    addChat(peer.id, '', `${peerName(peer)} is here`, true);

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

  /**
   * Takes the next file transfer r's peer opens (one at a time, as `switchboard recv` does),
   * then waits for the next one.
   * @param {Remote} r
   */
  function receiveFrom(r) {
    if (left || remotes.get(r.peer.id) !== r) return;
    const who = peerName(r.peer);
    /** @type {Map<number, ReturnType<typeof addFile>>} */
    const entries = new Map();
    receiveFiles(r.peer, {
      onProgress(p) {
        let e = entries.get(p.file);
        if (!e) {
          e = addFile(r.peer.id, who, p.name, p.size, 'receiving');
          entries.set(p.file, e);
        }
        if (!p.done) e.progress(p.size ? p.bytes / p.size : 0, `receiving ${Math.floor(p.size ? (p.bytes * 100) / p.size : 0)}%`);
      },
      onFile(f) {
        const i = [...entries.values()].findIndex((e) => e.li.dataset.state === 'receiving');
        const e = i >= 0 ? [...entries.values()][i] : addFile(r.peer.id, who, f.name, f.size, 'receiving');
        e.link(f.url);
        e.end('done', '');
      },
    }).then((results) => results, (err) => {
      console.warn('switchboard: receiving files:', err instanceof Error ? err.message : err);
      return /** @type {any} */ (err).results || [];
    }).then((/** @type {import('/sdk/transfer.js').ReceiveResult[]} */ results) => {
      for (const [i, e] of entries) {
        const res = results[i - 1];
        if (e.li.dataset.state === 'receiving') e.end('failed', `failed${res && res.error ? ': ' + res.error.code : ''}`);
      }
      receiveFrom(r);
    });
  }

  /**
   * Sends files to every other peer in the room (not to `switchboard send`, which only sends).
   * @param {File[]} files
   */
  function sendFilesToAll(files) {
    if (!client || left || !files.length) return;
    const targets = [...remotes.values()].filter((r) => !(r.peer.meta && r.peer.meta.role === 'send'));
    if (!targets.length) {
      notice('Nobody else is in the room to send files to.', 'info');
      return;
    }
    const me = `${name} (you)`;
    const entries = files.map((f) => {
      const e = addFile(client ? client.id : '', me, f.name, f.size, 'sending');
      e.progress(0, 'waiting');
      return { e, size: f.size, bytes: new Map(), ok: 0, failed: /** @type {string[]} */ ([]) };
    });
    const settle = () => {
      for (const x of entries) {
        if (x.ok + x.failed.length < targets.length) continue;
        if (x.failed.length === 0) x.e.end('done', `sent to ${x.ok}`);
        else x.e.end('failed', `sent to ${x.ok} of ${targets.length}; failed: ${[...new Set(x.failed)].join(', ')}`);
      }
    };
    for (const r of targets) {
      const to = r.peer.id;
      r.sending = r.sending.then(() => sendFiles(r.peer, files, {
        onProgress(p) {
          const x = entries[p.file - 1];
          if (!x || x.e.li.dataset.state !== 'sending') return;
          x.bytes.set(to, p.bytes);
          let sum = 0;
          for (const b of x.bytes.values()) sum += b;
          const total = x.size * targets.length;
          x.e.progress(total ? sum / total : 1, `sending ${Math.floor(total ? (sum * 100) / total : 100)}%`);
        },
      })).then((results) => {
        results.forEach((res, i) => {
          if (res.error) entries[i].failed.push(res.error.code);
          else entries[i].ok++;
        });
      }, (err) => {
        console.warn('switchboard: sending files:', err instanceof Error ? err.message : err);
        for (const x of entries) if (x.ok + x.failed.length < targets.length) x.failed.push(err && err.code ? err.code : 'error');
      }).then(settle);
    }
  }

  const fileInput = /** @type {HTMLInputElement} */ ($('file-input'));
  $('file-pick').addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    const files = Array.from(fileInput.files || []);
    fileInput.value = '';
    sendFilesToAll(files);
  });
  /** @param {DragEvent} ev */
  const hasFiles = (ev) => !!ev.dataTransfer && Array.from(ev.dataTransfer.types).includes('Files');
  let dragDepth = 0;
  document.addEventListener('dragenter', (ev) => {
    if (!hasFiles(ev) || left) return;
    ev.preventDefault();
    dragDepth++;
    document.body.classList.add('dragging');
  });
  document.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev) || left) return;
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('dragleave', () => {
    if (dragDepth > 0 && --dragDepth === 0) document.body.classList.remove('dragging');
  });
  document.addEventListener('drop', (ev) => {
    dragDepth = 0;
    document.body.classList.remove('dragging');
    if (!hasFiles(ev) || left) return;
    ev.preventDefault();
    sendFilesToAll(Array.from(ev.dataTransfer ? ev.dataTransfer.files : []));
  });

  /** @param {string} text */
  function sendChat(text) {
    text = text.slice(0, MAX_CHAT);
    const msg = JSON.stringify({ text });
    for (const r of remotes.values()) {
      if (r.chat && r.chat.readyState === 'open') r.chat.send(msg);
      else r.outbox.push(msg);
    }
    addChat(client ? client.id : '', `${name} (you)`, text);
  }

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
      onReconnecting({ attempt }) {
        if (left) return;
        // Calls in progress go on; only new peers and renegotiations wait.
        notice(attempt > 1 ? `Reconnecting to the server (attempt ${attempt})…` : 'Reconnecting to the server…', 'info');
        document.body.dataset.reconnecting = 'true';
      },
      onReconnected() {
        if (left) return;
        notice('');
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
