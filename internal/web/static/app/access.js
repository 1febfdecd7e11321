// access.js: the web app's side of access tokens (docs/auth.md). An invitation link carries its
// token in the URL fragment, /r/{room}#token=..., which browsers never send to the server (not
// in the request line, not in Referer), so no server or proxy logs it. The app reads it once,
// takes it out of the address bar (a link copied from there, or a screenshot, shares no
// credential) and keeps it in sessionStorage for this tab only, so a reload still has it. The
// token goes to the server only inside the join frame. Its payload is decoded here for display
// only (the name shown as "you"); the server alone verifies it.

const TOKEN_KEY = 'switchboard.token.';

/**
 * @typedef {Object} TokenInfo
 * @property {string} token the token as given
 * @property {string} [sub] the user's identity
 * @property {string} [name] display name granted
 * @property {string} [room] the granted room or prefix ("team-*")
 * @property {number} [exp] expiry, seconds since the epoch
 */

/**
 * Decodes a JWT's payload without verifying it (display only). Returns {} when it is not a JWT.
 * @param {string} token @returns {Object<string, any>}
 */
export function decodeClaims(token) {
  const part = token.split('.')[1];
  if (!part) return {};
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

/**
 * Takes the token out of the page's URL fragment (#token=...), if any, leaving the rest of
 * the fragment, and remembers it for room in this tab. Otherwise returns the token this tab
 * remembered for room (a reload), or null.
 * @param {string} room @returns {TokenInfo|null}
 */
export function takeToken(room) {
  const frag = new URLSearchParams(location.hash.slice(1));
  let token = (frag.get('token') || '').trim();
  if (token) {
    frag.delete('token');
    const rest = frag.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    try { sessionStorage.setItem(TOKEN_KEY + room, token); } catch { /* storage blocked: no reload */ }
  } else {
    try { token = sessionStorage.getItem(TOKEN_KEY + room) || ''; } catch { token = ''; }
  }
  if (!token) return null;
  const c = decodeClaims(token);
  return {
    token,
    sub: typeof c.sub === 'string' ? c.sub : undefined,
    name: typeof c.name === 'string' ? c.name : undefined,
    room: typeof c.room === 'string' ? c.room : undefined,
    exp: typeof c.exp === 'number' ? c.exp : undefined,
  };
}

/** Forgets the token this tab keeps for room (it was refused). @param {string} room */
export function forgetToken(room) {
  try { sessionStorage.removeItem(TOKEN_KEY + room); } catch { /* storage blocked */ }
}

/**
 * The room a token link opened at / names: the token's room when it is one room, else ''.
 * @returns {string}
 */
export function tokenRoomAtRoot() {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (!token) return '';
  const room = decodeClaims(token).room;
  return typeof room === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(room) ? room : '';
}

/**
 * What to tell a person whose join was refused, or whose presence the server ended, for a
 * protocol error code; null for codes that are not about access.
 * @param {string} code @param {boolean} joined whether the call was under way
 * @returns {{title: string, text: string}|null}
 */
export function accessMessage(code, joined) {
  switch (code) {
    case 'token-expired':
      return joined
        ? { title: 'This link has expired', text: 'The connection to the server was lost and the link can no longer rejoin the call — ask for a new one.' }
        : { title: 'This link has expired', text: 'This link has expired — ask for a new one.' };
    case 'token-invalid':
      return { title: 'This link is not valid', text: 'The server did not accept this link — ask for a new one, and open it exactly as you received it.' };
    case 'token-not-yet-valid':
      return { title: 'This link is not valid yet', text: 'This link only works from a later time — try again later, or check this computer\'s clock.' };
    case 'room-not-granted':
      return { title: 'This link is for another room', text: 'This link does not open this room — open the link you received as it is, or ask for one for this room.' };
    case 'join-not-granted':
      return { title: 'This link cannot join calls', text: 'This link does not allow joining a call — ask for a new one.' };
    case 'token-missing':
      return { title: 'This call needs an invitation link', text: 'This server only admits people with an invitation link — ask the organiser for one.' };
    case 'replaced':
      return { title: 'You joined from another tab', text: 'You joined this call from another tab or device, so this one was disconnected.' };
    case 'removed':
      return { title: 'You were removed from the call', text: 'The organiser removed you from this call.' };
    case 'room-closed':
      return { title: 'The call has ended', text: 'The organiser closed this call.' };
  }
  return null;
}
