// page.js: what every view of the web app (app.js) uses: finding elements, switching views,
// toasts (notices that dismiss themselves), the screen-reader announcer, the page saying why a
// call ended, how peers and server messages read, and the types the call's modules (chat.js,
// files.js, media.js, tiles.js, state.js) share.

/** @typedef {import('/sdk/switchboard.js').Client} Client */
/** @typedef {import('/sdk/switchboard.js').Peer} Peer */
/** @typedef {import('/app/tiles.js').Tile} Tile */

/**
 * @typedef {Object} Remote
 * @property {Peer} peer
 * @property {Tile} tile the peer's tile in the grid (tiles.js)
 * @property {HTMLVideoElement} video the tile's video (the peer's camera and sound)
 * @property {RTCDataChannel|null} chat
 * @property {string[]} outbox chat messages waiting for the channel to open
 * @property {Promise<void>} sending the file transfers to this peer, one after the other
 */

/**
 * What the call's modules see of the call in progress (app.js's call()).
 * @typedef {Object} CallView
 * @property {HTMLElement} log the chat log
 * @property {Map<string, Remote>} remotes the remote peers, by id
 * @property {() => Iterable<Remote>} away the people whose connection dropped and whose tile
 *   waits for them (app.js): chat messages wait in their outbox for their return
 * @property {string} me how the local user is shown ("Ada (you)")
 * @property {Client|null} client null until joined and after leaving
 * @property {boolean} left whether the user left the call (or it ended)
 */

const VIEWS = ['landing', 'prejoin', 'call', 'left', 'ended', 'files'];

/** How long a toast stays, by kind (ms). */
const TOAST_MS = { info: 4000, error: 8000 };
/** Toasts shown at once; an older one goes when a new one comes. */
const MAX_TOASTS = 3;

/** @param {string} id @returns {HTMLElement} */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/** @param {string} view */
export function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  document.body.dataset.view = view;
}

/**
 * Shows a toast: a notice in the top middle of the page that goes by itself (4 s for
 * information, 8 s for an error; hovering or focusing it holds it) and has a close button. It
 * floats over the page: nothing moves, and it never reaches the controls bar. An error is
 * read out at once (role alert), information politely (role status).
 * @param {string} text @param {'error'|'info'} [kind] @param {number} [ms] how long it stays
 * @returns {HTMLElement} the toast
 */
export function toast(text, kind = 'error', ms = TOAST_MS[kind]) {
  const box = $('toasts');
  while (box.children.length >= MAX_TOASTS) box.firstElementChild?.remove();
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const p = document.createElement('p');
  p.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => el.remove());
  el.append(p, close);
  box.append(el);
  let left = ms;
  let since = Date.now();
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let timer;
  const arm = () => { since = Date.now(); timer = setTimeout(() => el.remove(), left); };
  const hold = () => { clearTimeout(timer); left = Math.max(1500, left - (Date.now() - since)); };
  el.addEventListener('pointerenter', hold);
  el.addEventListener('pointerleave', arm);
  el.addEventListener('focusin', hold);
  el.addEventListener('focusout', arm);
  arm();
  return el;
}

/** Removes every toast. */
export function clearToasts() {
  $('toasts').replaceChildren();
}

/**
 * A toast (the older name, kept for the modules that call it); an empty text clears them.
 * @param {string} text @param {'error'|'info'} [kind]
 */
export function notice(text, kind = 'error') {
  if (!text) clearToasts();
  else toast(text, kind);
}

/**
 * Says text to screen readers (the polite live region #announcer, always in the page whatever
 * is open): who came and went, chat messages from the others, what a shortcut did.
 * @param {string} text
 */
export function announce(text) {
  const box = $('announcer');
  const line = document.createElement('p');
  line.textContent = text;
  box.append(line);
  while (box.children.length > 5) box.firstElementChild?.remove();
}

/**
 * Shows why the call cannot go on (a refused link, replaced, removed, room closed).
 * @param {string} code @param {{title: string, text: string}} msg
 */
export function ended(code, msg) {
  clearToasts();
  show('ended');
  document.body.dataset.ended = code;
  document.title = `${msg.title} · Switchboard`;
  $('ended-title').textContent = msg.title;
  $('ended-text').textContent = msg.text;
}

/** The name a peer is shown under. @param {Peer} peer @returns {string} */
export function peerName(peer) {
  return peer.name || peer.identity || 'Anonymous';
}

/**
 * Up to two initials of a name, for a tile whose camera is off: "Ada Lovelace" → "AL",
 * "grace" → "G", "李小龙" → "李小".
 * @param {string} name @returns {string}
 */
export function initials(name) {
  const words = name.replace(/\(you\)$/, '').trim().split(/[\s._-]+/u).filter(Boolean);
  if (words.length === 0) return '?';
  const first = (/** @type {string} */ w) => Array.from(w)[0] || '';
  if (words.length === 1) {
    const chars = Array.from(words[0]);
    return (/[\p{Script=Han}\p{Script=Hangul}\p{Script=Hiragana}\p{Script=Katakana}]/u.test(chars[0] || '')
      ? chars.slice(0, 2).join('') : chars[0] || '?').toUpperCase();
  }
  return (first(words[0]) + first(words[words.length - 1])).toUpperCase();
}

/** Shows a server message (from the application, through the server API) in text. @param {any} data */
export function serverText(data) {
  if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
  if (typeof data === 'string') return data;
  return JSON.stringify(data);
}
