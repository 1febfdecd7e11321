// bitrate.js: what each page sends, capped by the number of peers in the call. In a mesh a
// page sends its camera once per remote peer, so a 6-person call sends it 5 times: left to
// the browser, each copy grows to what the link seems to take (about 1.7 Mbit/s at 640×480 in
// Chromium) and an ordinary uplink saturates. Each video sender gets an RTCRtpSender
// setParameters cap instead (no renegotiation): a share of a fixed budget in bits per second
// (maxBitrate) and, as the call grows, a smaller picture (scaleResolutionDownBy, from the
// track's own size so a 720p and a 480p camera end at the same height). Screen shares get a
// budget of their own and keep their resolution (text must stay legible); the browser lowers
// their frame rate instead (the track's contentHint is "detail", share.js).
//
// capFor and screenCapFor are pure (the numbers are documented in docs/web-app-media.md);
// callBitrate applies them to every sender of the call and again whenever update() is called
// (a description was set, a peer joined or left, a connection came up, a share started, a
// camera switched). The picture's scale goes on at once, before the encoder starts; the bit
// rate only once the sender has encoded its first frame: Chromium's encoder, started with a
// maxBitrate of any value, drops its first frames about half the time and starts at a quarter
// of the picture, which costs a joining call ~100 ms before anyone is seen
// (docs/benchmarks.md, issue 17).
// ?cap=off on the call's URL turns the caps off, for comparisons (docs/benchmarks.md).

/** @typedef {import('/app/page.js').Remote} Remote */

/** Bits per second of camera video a page sends in all, before the per-sender limits. */
export const CAMERA_BUDGET = 2_500_000;
/** Bits per second of screen video a page sends in all. */
export const SCREEN_BUDGET = 3_000_000;

/**
 * @typedef {Object} Cap
 * @property {number} maxBitrate bits per second for one sender
 * @property {number} scaleResolutionDownBy 1 = the track's own size
 * @property {number} maxHeight the picture's short side the cap aims at (0: no limit)
 */

/**
 * The cap of one camera sender when the page sends to `peers` remote peers.
 * @param {number} peers remote peers (1 in a two-person call)
 * @param {number} shortSide the camera track's short side in pixels (480 for 640×480); 0 if unknown
 * @returns {Cap}
 */
export function capFor(peers, shortSide) {
  const n = Math.max(1, peers);
  const maxBitrate = Math.round(Math.min(1_500_000, Math.max(150_000, CAMERA_BUDGET / n)));
  const maxHeight = n <= 2 ? 720 : n <= 4 ? 360 : 240;
  const scale = shortSide > maxHeight ? shortSide / maxHeight : 1;
  return { maxBitrate, scaleResolutionDownBy: Math.round(scale * 1000) / 1000, maxHeight };
}

/**
 * The cap of one screen-share sender when the page sends to `peers` remote peers.
 * @param {number} peers
 * @returns {Cap}
 */
export function screenCapFor(peers) {
  const n = Math.max(1, peers);
  const maxBitrate = Math.round(Math.min(2_500_000, Math.max(300_000, SCREEN_BUDGET / n)));
  return { maxBitrate, scaleResolutionDownBy: 1, maxHeight: 0 };
}

/** @param {MediaStreamTrack} track @returns {number} */
function shortSide(track) {
  const s = track.getSettings();
  return Math.min(s.width || 0, s.height || 0) || s.height || 0;
}

/**
 * Sets cap on sender's first encoding unless it holds already; with rate false, only its
 * scale. Resolves to whether the sender now carries it (false before negotiation, when there
 * is no encoding to set yet).
 * @param {RTCRtpSender} sender @param {Cap} cap @param {boolean} [rate] @returns {Promise<boolean>}
 */
export async function applyCap(sender, cap, rate = true) {
  const params = sender.getParameters();
  const enc = params.encodings && params.encodings[0];
  if (!enc) return false;
  const scaled = (enc.scaleResolutionDownBy || 1) === cap.scaleResolutionDownBy;
  if (scaled && (!rate || enc.maxBitrate === cap.maxBitrate)) return true;
  if (rate) enc.maxBitrate = cap.maxBitrate;
  enc.scaleResolutionDownBy = cap.scaleResolutionDownBy;
  await sender.setParameters(params);
  return true;
}

/** How often, and how long, a sender is asked whether it has encoded a frame. */
const FIRST_FRAME_POLL_MS = 50, FIRST_FRAME_WAIT_MS = 5000;

/**
 * Resolves to true once sender has encoded a frame (outbound-rtp framesEncoded), false after
 * FIRST_FRAME_WAIT_MS or once pc closes.
 * @param {RTCPeerConnection} pc @param {RTCRtpSender} sender @returns {Promise<boolean>}
 */
async function firstFrame(pc, sender) {
  const end = Date.now() + FIRST_FRAME_WAIT_MS;
  while (Date.now() < end && pc.signalingState !== 'closed') {
    const stats = await sender.getStats().catch(() => null);
    if (stats) {
      for (const s of stats.values()) {
        if (s.type === 'outbound-rtp' && s.framesEncoded > 0) return true;
      }
    }
    await new Promise((r) => setTimeout(r, FIRST_FRAME_POLL_MS));
  }
  return false;
}

/**
 * Keeps the caps of every video sender of the call in line with the number of peers.
 * @param {Map<string, Remote>} remotes
 * @param {{enabled: boolean, isScreen: (sender: RTCRtpSender) => boolean}} opts
 * @returns {{update: () => void, enabled: boolean, caps: () => {camera: Cap, screen: Cap}}}
 */
export function callBitrate(remotes, { enabled, isScreen }) {
  /** One setParameters at a time per sender: a second one meanwhile is refused. */
  /** @type {WeakMap<RTCRtpSender, Promise<void>>} */
  const chains = new WeakMap();
  /** The track each sender was last watched with for its first frame, once per track (a
   * camera turned on again, or a share that reuses its sender, is a new track). */
  /** @type {WeakMap<RTCRtpSender, MediaStreamTrack>} */
  const watched = new WeakMap();
  /** The track each sender has encoded a frame of: its bit rate may be capped. */
  /** @type {WeakMap<RTCRtpSender, MediaStreamTrack>} */
  const started = new WeakMap();

  function update() {
    if (!enabled) return;
    const n = remotes.size;
    for (const r of remotes.values()) {
      if (r.peer.pc.signalingState === 'closed') continue;
      for (const sender of r.peer.pc.getSenders()) {
        const track = sender.track;
        // An ended track (the camera off) has no size to scale from, and sends nothing.
        if (!track || track.kind !== 'video' || track.readyState === 'ended') continue;
        const cap = isScreen(sender) ? screenCapFor(n) : capFor(n, shortSide(track));
        const rate = started.get(sender) === track;
        if (!rate && watched.get(sender) !== track && r.peer.pc.connectionState === 'connected') {
          watched.set(sender, track);
          const pc = r.peer.pc;
          firstFrame(pc, sender).then((ok) => {
            if (!ok) return;
            started.set(sender, track);
            update();
          });
        }
        const prev = chains.get(sender) || Promise.resolve();
        chains.set(sender, prev.then(() => applyCap(sender, cap, rate)).then(() => {}, (e) => {
          console.warn('switchboard: bitrate cap:', e instanceof Error ? e.message : e);
        }));
      }
    }
  }

  return {
    update,
    enabled,
    caps: () => ({ camera: capFor(remotes.size, 480), screen: screenCapFor(remotes.size) }),
  };
}
