// media.js: the call's media (app.js): the local camera and microphone, playing remote video
// (muted with an Unmute button when autoplay with sound is refused), and a remote tile's
// connection state and route (direct or relay).

import { notice } from '/app/page.js';

/** @typedef {import('/app/page.js').Remote} Remote */

/** @returns {Promise<MediaStream|null>} */
export async function getMedia() {
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
export function play(video, tile) {
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
export async function route(pc) {
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

/** @param {Remote} r @param {string} state */
export function setState(r, state) {
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
