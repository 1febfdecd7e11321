// speaker.js: who is speaking, from the audio each remote peer sends. Every POLL_MS the
// inbound-rtp stats of each peer's audio receivers give the energy received since the last
// poll (totalAudioEnergy and totalSamplesDuration: their ratio's square root is the RMS level,
// 0..1, over exactly that span, where audioLevel is only the latest instant). A peer whose
// level reached THRESHOLD within the last HOLD_MS is speaking: its tile gets
// data-speaking="true"; the loudest of those also gets data-active-speaker="true" (one tile at
// most). A muted peer sends silence and stops being highlighted within HOLD_MS.

/** @typedef {import('/app/page.js').Remote} Remote */

/** How often levels are read, in milliseconds. */
export const POLL_MS = 250;
/** RMS level (0..1) from which a peer counts as speaking: a voice is 0.05-0.3, a quiet room below 0.01. */
export const THRESHOLD = 0.03;
/** How long a peer stays "speaking" after its level last reached THRESHOLD, in milliseconds. */
export const HOLD_MS = 1000;

/**
 * The RMS level between two readings of a receiver's cumulative energy and duration.
 * @param {{energy: number, duration: number}|undefined} prev
 * @param {{energy: number, duration: number}} cur
 * @returns {number} 0..1
 */
export function levelBetween(prev, cur) {
  if (!prev) return 0;
  const d = cur.duration - prev.duration;
  const e = cur.energy - prev.energy;
  if (!(d > 0) || !(e > 0)) return 0;
  return Math.min(1, Math.sqrt(e / d));
}

/**
 * Watches the remote peers' audio and marks their tiles.
 * @param {Map<string, Remote>} remotes
 * @returns {{stop: () => void, levels: () => Object<string, number>}}
 */
export function watchSpeakers(remotes) {
  /** @type {WeakMap<Remote, {energy: number, duration: number}>} */
  const last = new WeakMap();
  /** @type {WeakMap<Remote, number>} when each peer's level last reached THRESHOLD */
  const loudAt = new WeakMap();
  /** @type {Object<string, number>} the latest level per peer id, for tests and the details */
  let levels = {};
  let busy = false;

  /** @param {Remote} r @returns {Promise<number>} */
  async function level(r) {
    let energy = 0, duration = 0, seen = false;
    for (const rx of r.peer.pc.getReceivers()) {
      if (!rx.track || rx.track.kind !== 'audio') continue;
      (await rx.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || typeof s.totalAudioEnergy !== 'number') return;
        seen = true;
        energy += s.totalAudioEnergy;
        duration += s.totalSamplesDuration || 0;
      });
    }
    if (!seen) return 0;
    const cur = { energy, duration };
    const lv = levelBetween(last.get(r), cur);
    last.set(r, cur);
    return lv;
  }

  async function poll() {
    if (busy) return; // a slow getStats: skip a beat rather than pile up
    busy = true;
    try {
      const now = performance.now();
      /** @type {Object<string, number>} */
      const next = {};
      /** @type {Remote|null} */
      let loudest = null;
      let top = 0;
      for (const r of [...remotes.values()]) {
        if (r.peer.pc.signalingState === 'closed') continue;
        let lv = 0;
        try { lv = await level(r); } catch { /* closed meanwhile */ }
        next[r.peer.id] = lv;
        if (lv >= THRESHOLD) loudAt.set(r, now);
        const at = loudAt.get(r);
        const speaking = at !== undefined && now - at < HOLD_MS;
        mark(r.tile.el, 'speaking', speaking);
        if (speaking && lv >= top) { top = lv; loudest = r; }
      }
      for (const r of remotes.values()) mark(r.tile.el, 'activeSpeaker', r === loudest);
      levels = next;
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => { poll().catch(() => {}); }, POLL_MS);
  return {
    stop() {
      clearInterval(timer);
      for (const r of remotes.values()) { mark(r.tile.el, 'speaking', false); mark(r.tile.el, 'activeSpeaker', false); }
    },
    levels: () => ({ ...levels }),
  };
}

/** @param {HTMLElement} tile @param {'speaking'|'activeSpeaker'} key @param {boolean} on */
function mark(tile, key, on) {
  if (on) tile.dataset[key] = 'true';
  else delete tile.dataset[key];
}
