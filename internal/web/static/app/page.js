// page.js: the web app's page (app.js): elements by id, which view shows, the notice line,
// the "ended" view, how peers and server messages read, and the types the call's modules
// (chat.js, files.js, media.js) share.

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

/**
 * What the call's modules see of the call in progress (app.js's call()).
 * @typedef {Object} CallView
 * @property {HTMLElement} log the chat log
 * @property {Map<string, Remote>} remotes the remote peers, by id
 * @property {string} me how the local user is shown ("Ada (you)")
 * @property {Client|null} client null until joined and after leaving
 * @property {boolean} left whether the user left the call (or it ended)
 */

/** @param {string} id @returns {HTMLElement} */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/** @param {string} view */
export function show(view) {
  for (const id of ['landing', 'prompt', 'call', 'left', 'ended', 'files']) $(id).hidden = id !== view;
  document.body.dataset.view = view;
}

/** @param {string} text @param {'error'|'info'} [kind] */
export function notice(text, kind = 'error') {
  const el = $('notice');
  el.textContent = text;
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

/**
 * Shows why the call cannot go on (a refused link, replaced, removed, room closed).
 * @param {string} code @param {{title: string, text: string}} msg
 */
export function ended(code, msg) {
  notice('');
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

/** Shows a server message (from the application, through the server API) in text. @param {any} data */
export function serverText(data) {
  if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
  if (typeof data === 'string') return data;
  return JSON.stringify(data);
}
