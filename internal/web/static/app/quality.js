// quality.js: how well each remote peer comes through, in words. Every POLL_MS one getStats
// of the pair's connection gives, over the span since the last poll:
//   - loss: packets lost of those expected, both ways — what this page lost receiving
//     (inbound-rtp packetsLost / packetsReceived, audio and video) and what the peer reports
//     losing of ours (remote-inbound-rtp fractionLost);
//   - rtt: the round trip of the selected candidate pair (currentRoundTripTime), else the
//     RTCP one (remote-inbound-rtp roundTripTime);
//   - frozen: the share of the span the peer's video stood still (inbound-rtp
//     totalFreezesDuration: a frame later than 3 frame times, so a camera that is off and
//     sends a black frame a second does not count), the frame rate's trouble in one figure.
// classify() turns a sample into "good", "unstable" or "poor" (thresholds below); the label
// worsens at once and improves only after two better samples in a row, so it does not flicker.
// The tile shows it on a button in its badges (tiles.js badge('quality'): .quality,
// data-quality on the tile); the button opens the details: route (direct or relay), codecs, resolution and frame rate, bitrate both ways,
// round trip and loss.

/** @typedef {import('/app/page.js').Remote} Remote */

/** How often each pair's stats are read, in milliseconds. */
export const POLL_MS = 1500;

/** Limits of "good" and "unstable"; beyond the second, "poor". */
export const LIMITS = {
  loss: [0.02, 0.08], // fraction of packets
  rtt: [0.25, 0.6], // seconds
  frozen: [0.1, 0.3], // fraction of the time
};

/**
 * @typedef {Object} Sample
 * @property {number} loss 0..1, the worse direction
 * @property {number} lossIn 0..1, received
 * @property {number} lossOut 0..1, as the peer reports it
 * @property {number|null} rtt seconds
 * @property {number} frozen 0..1
 * @property {number} fps frames per second decoded (the busiest video)
 * @property {string} resolution e.g. "640×480" ('' without video)
 * @property {string} route "direct", "relay" or ''
 * @property {string} codecs e.g. "VP8, opus"
 * @property {number} kbpsIn
 * @property {number} kbpsOut
 * @property {number} packets packets expected in the span (0: nothing to judge)
 */

/** @typedef {'good'|'unstable'|'poor'} Quality */

/** @param {Sample} s @returns {Quality} */
export function classify(s) {
  /** @param {number|null} v @param {number[]} lim @returns {number} 0, 1 or 2 */
  const grade = (v, lim) => (v === null ? 0 : v >= lim[1] ? 2 : v >= lim[0] ? 1 : 0);
  const g = Math.max(s.packets > 0 ? grade(s.loss, LIMITS.loss) : 0, grade(s.rtt, LIMITS.rtt), grade(s.frozen, LIMITS.frozen));
  return g === 2 ? 'poor' : g === 1 ? 'unstable' : 'good';
}

/**
 * @typedef {Object} Totals
 * @property {number} t milliseconds
 * @property {number} recv
 * @property {number} lost
 * @property {number} freezes seconds
 * @property {number} bytesIn
 * @property {number} bytesOut
 */

/**
 * One sample from a stats report and the totals of the previous one.
 * @param {RTCStatsReport} stats @param {Totals|undefined} prev @param {number} now
 * @returns {{sample: Sample, totals: Totals}}
 */
export function sampleOf(stats, prev, now) {
  /** @type {Totals} */
  const tot = { t: now, recv: 0, lost: 0, freezes: 0, bytesIn: 0, bytesOut: 0 };
  let lossOut = 0, fps = 0, best = 0, resolution = '';
  /** @type {number|null} */
  let rtcpRtt = null;
  /** @type {Set<string>} */
  const codecs = new Set();
  /** @type {any} */
  let pair = null;
  stats.forEach((/** @type {any} */ s) => {
    if (s.type === 'inbound-rtp') {
      tot.recv += s.packetsReceived || 0;
      tot.lost += Math.max(0, s.packetsLost || 0);
      tot.bytesIn += s.bytesReceived || 0;
      if (s.kind === 'video') {
        tot.freezes += s.totalFreezesDuration || 0;
        const px = (s.frameWidth || 0) * (s.frameHeight || 0);
        if (px > best) {
          best = px;
          resolution = `${s.frameWidth}×${s.frameHeight}`;
          fps = s.framesPerSecond || 0;
        }
      }
      const c = s.codecId && stats.get(s.codecId);
      if (c && c.mimeType && (s.packetsReceived || 0) > 0) codecs.add(c.mimeType.replace(/^\w+\//, ''));
    } else if (s.type === 'outbound-rtp') {
      tot.bytesOut += s.bytesSent || 0;
    } else if (s.type === 'remote-inbound-rtp') {
      if (typeof s.fractionLost === 'number') lossOut = Math.max(lossOut, s.fractionLost);
      if (typeof s.roundTripTime === 'number') rtcpRtt = Math.max(rtcpRtt || 0, s.roundTripTime);
    } else if (s.type === 'transport' && s.selectedCandidatePairId) {
      pair = stats.get(s.selectedCandidatePairId);
    }
  });
  if (!pair) stats.forEach((/** @type {any} */ s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  let route = '';
  if (pair) {
    const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
    route = (l && l.candidateType === 'relay') || (r && r.candidateType === 'relay') ? 'relay' : 'direct';
  }
  const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : rtcpRtt;
  const p = prev || tot; // no previous reading: a span of nothing
  const dt = (now - p.t) / 1000;
  const recv = Math.max(0, tot.recv - p.recv);
  const lost = Math.max(0, tot.lost - p.lost);
  const lossIn = recv + lost > 0 ? lost / (recv + lost) : 0;
  return {
    totals: tot,
    sample: {
      loss: Math.max(lossIn, lossOut),
      lossIn,
      lossOut,
      rtt,
      frozen: dt > 0 ? Math.min(1, Math.max(0, tot.freezes - p.freezes) / dt) : 0,
      fps,
      resolution,
      route,
      codecs: [...codecs].sort().join(', '),
      kbpsIn: dt > 0 ? Math.round(Math.max(0, tot.bytesIn - p.bytesIn) * 8 / dt / 1000) : 0,
      kbpsOut: dt > 0 ? Math.round(Math.max(0, tot.bytesOut - p.bytesOut) * 8 / dt / 1000) : 0,
      packets: recv + lost,
    },
  };
}

const ORDER = { good: 0, unstable: 1, poor: 2 };

/**
 * Watches every remote peer's connection and labels its tile.
 * @param {Map<string, Remote>} remotes
 * @param {{onSample?: () => void}} [opts] onSample: after each round (bitrate.js's update rides on it)
 * @returns {{stop: () => void, samples: () => Object<string, Sample & {quality: Quality}>}}
 */
export function watchQuality(remotes, opts = {}) {
  /** @type {WeakMap<Remote, {totals?: Totals, quality?: Quality, better: number, badge: HTMLButtonElement, details: HTMLElement}>} */
  const st = new WeakMap();
  /** @type {Object<string, Sample & {quality: Quality}>} */
  let latest = {};
  let busy = false;

  /** @param {Remote} r */
  function state(r) {
    let s = st.get(r);
    if (s) return s;
    const badge = document.createElement('button');
    badge.type = 'button';
    badge.className = 'quality';
    badge.hidden = true;
    badge.setAttribute('aria-expanded', 'false');
    const details = document.createElement('dl');
    details.className = 'quality-details';
    details.id = `quality-${r.peer.id}`;
    details.hidden = true;
    badge.setAttribute('aria-controls', details.id);
    badge.addEventListener('click', () => {
      details.hidden = !details.hidden;
      badge.setAttribute('aria-expanded', String(!details.hidden));
    });
    r.tile.badge('quality').replaceChildren(badge);
    r.tile.el.querySelector('.quality-details')?.remove(); // a tile taken over from an earlier presence
    r.tile.el.append(details);
    s = { better: 0, badge, details };
    st.set(r, s);
    return s;
  }

  /** @param {Remote} r */
  async function check(r) {
    const s = state(r);
    const now = performance.now();
    const { sample, totals } = sampleOf(await r.peer.pc.getStats(), s.totals, now);
    const first = !s.totals;
    s.totals = totals;
    if (first || r.peer.pc.connectionState !== 'connected') return;
    const q = classify(sample);
    if (!s.quality || ORDER[q] >= ORDER[s.quality]) {
      s.quality = q;
      s.better = 0;
    } else if (++s.better >= 2) {
      s.quality = q;
      s.better = 0;
    }
    latest[r.peer.id] = { ...sample, quality: s.quality };
    r.tile.el.dataset.quality = s.quality;
    s.badge.hidden = false;
    s.badge.textContent = s.quality;
    s.badge.setAttribute('aria-label', `Connection ${s.quality}; show details`);
    s.badge.title = 'Connection quality: click for details';
    showDetails(s.details, sample);
  }

  async function poll() {
    if (busy) return;
    busy = true;
    try {
      for (const r of [...remotes.values()]) {
        if (r.peer.pc.signalingState === 'closed') continue;
        try { await check(r); } catch { /* closed meanwhile */ }
      }
      if (opts.onSample) opts.onSample();
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => { poll().catch(() => {}); }, POLL_MS);
  poll().catch(() => {});
  return {
    stop() { clearInterval(timer); },
    samples: () => ({ ...latest }),
  };
}

/** @param {HTMLElement} dl @param {Sample} s */
function showDetails(dl, s) {
  const pct = (/** @type {number} */ v) => `${(v * 100).toFixed(v > 0 && v < 0.1 ? 1 : 0)} %`;
  /** @type {[string, string][]} */
  const rows = [
    ['Route', s.route === 'relay' ? 'relay (through the server’s TURN)' : s.route || '—'],
    ['Codecs', s.codecs || '—'],
    ['Video', s.resolution ? `${s.resolution} at ${Math.round(s.fps)} fps` : '—'],
    ['Bitrate', `↓ ${s.kbpsIn} kbit/s · ↑ ${s.kbpsOut} kbit/s`],
    ['Round trip', s.rtt === null ? '—' : `${Math.round(s.rtt * 1000)} ms`],
    ['Packet loss', `↓ ${pct(s.lossIn)} · ↑ ${pct(s.lossOut)}`],
  ];
  const frag = document.createDocumentFragment();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.dataset.key = k.toLowerCase().replace(/ /g, '-');
    frag.append(dt, dd);
  }
  dl.replaceChildren(frag);
}
