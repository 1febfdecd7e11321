// sdk-connect.js: opening the browser SDK's signaling socket (part of switchboard.js): the
// join handshake up to the welcome, access tokens, and the reconnect policy (which closes are
// final, the backoff between attempts).

import { ServerError } from './sdk-errors.js';

/** @typedef {import('./switchboard.js').JoinOptions} JoinOptions */
/** @typedef {import('./switchboard.js').ReconnectOptions} ReconnectOptions */

/** Close codes after which the client does not reconnect: its own fault, a retry would repeat it. */
export const FINAL_CODES = new Set([1000, 1002, 1007, 1008, 1009]);

/** The close code of a server going away for a restart: reconnect at once and resume. */
export const RESTART_CODE = 1012;

/**
 * The backoff before reconnection attempt n (1, 2, ...): minDelayMs doubled per attempt up to
 * maxDelayMs, jittered ±25%.
 * @param {ReconnectOptions} r @param {number} n @returns {number} milliseconds
 */
export function retryDelay(r, n) {
  const min = r.minDelayMs ?? 250, max = r.maxDelayMs ?? 5000;
  return Math.min(max, min * 2 ** (n - 1)) * (0.75 + Math.random() / 2);
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
export async function freshToken(options) {
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
 * resuming with resume when given (last: the highest event seq received).
 * @param {string} url @param {string} room @param {JoinOptions} options @param {string} resume
 * @param {string} token @param {number} [last]
 * @returns {Promise<Connection>}
 */
export function connect(url, room, options, resume, token, last = 0) {
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
      if (resume) {
        frame.resume = resume;
        frame.last = last;
      }
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
