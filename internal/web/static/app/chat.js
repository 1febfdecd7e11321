// chat.js: the call's chat (app.js): one data channel labelled "chat" per pair, opened by the
// side that makes the offers, carrying {"text": ...}; messages wait in the pair's outbox until
// it opens. The chat log also shows who came and went and the organiser's messages (and the
// files of files.js). Messages from the others are also said to screen readers (announce).

import { peerName, announce } from '/app/page.js';

/** @typedef {import('/app/page.js').CallView} CallView */
/** @typedef {import('/app/page.js').Remote} Remote */

export const CHAT_LABEL = 'chat';
export const MAX_CHAT = 1000;

/**
 * The chat of a call.
 * @param {CallView} view
 * @param {{onMessage?: () => void}} [opts] onMessage: a message from another person arrived
 */
export function callChat(view, opts = {}) {
  const { log, remotes } = view;

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

  /** @param {Remote} r @param {RTCDataChannel} ch */
  function attachChat(r, ch) {
    r.chat = ch;
    ch.onopen = () => {
      for (const m of r.outbox.splice(0)) ch.send(m);
    };
    ch.onmessage = (ev) => {
      let text = '';
      try { text = String(JSON.parse(ev.data).text ?? ''); } catch { return; }
      if (!text) return;
      addChat(r.peer.id, peerName(r.peer), text.slice(0, MAX_CHAT));
      announce(`${peerName(r.peer)} says: ${text.slice(0, 300)}`);
      if (opts.onMessage) opts.onMessage();
    };
    if (ch.readyState === 'open') ch.onopen(new Event('open'));
  }

  /** @param {string} text */
  function sendChat(text) {
    text = text.slice(0, MAX_CHAT);
    const msg = JSON.stringify({ text });
    for (const r of remotes.values()) {
      if (r.chat && r.chat.readyState === 'open') r.chat.send(msg);
      else r.outbox.push(msg);
    }
    for (const r of view.away()) r.outbox.push(msg);
    addChat(view.client ? view.client.id : '', view.me, text);
  }

  return { addChat, attachChat, sendChat };
}
