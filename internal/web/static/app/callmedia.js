// callmedia.js: the call's media beyond the camera and microphone, installed into app.js as an
// extension (EXTENSIONS, with the CallApi): screen sharing (share.js), the active speaker
// (speaker.js), each person's connection quality (quality.js) and the per-peer video caps
// (bitrate.js). Through the CallApi it adds the Share screen control (S), takes the tracks that
// are screens (claimTrack), gives each person who appears the share in progress (onRemote),
// says which stream is our screen in the media state (state.set({screen})) and reads the
// others' (state.onChange), and stops everything when the call ends (onLeave).
//
// ?cap=off on the call's URL turns the bitrate caps off, for comparisons (docs/benchmarks.md).

import { callShare, SCREEN_FIELD } from '/app/share.js';
import { watchSpeakers } from '/app/speaker.js';
import { watchQuality } from '/app/quality.js';
import { callBitrate } from '/app/bitrate.js';

/** @typedef {import('/app/page.js').Remote} Remote */

/**
 * What the extension gives window.switchboardApp (as callMedia), for tests and automation.
 * @typedef {Object} CallMedia
 * @property {import('/app/share.js').Share} share
 * @property {ReturnType<typeof callBitrate>} bitrate
 * @property {ReturnType<typeof watchSpeakers>} speakers
 * @property {ReturnType<typeof watchQuality>} quality
 */

/**
 * Installs the call's media features (an entry of app.js's EXTENSIONS).
 * @param {any} api the CallApi (app.js)
 * @returns {{callMedia: CallMedia}}
 */
export function installCallMedia(api) {
  const params = new URLSearchParams(location.search);
  /** @type {Map<string, Remote>} */
  const remotes = api.remotes;
  /** @type {CallMedia['bitrate']|null} made just after share.js, which it asks about its senders */
  let bitrate = null;
  const button = api.controls.add({
    id: 'share', label: 'Share screen', icon: 'share', key: 's',
    onClick: () => { /* share.js listens on the button itself */ },
  });
  const share = callShare({
    tiles: api.tiles,
    remotes,
    button,
    announce: (id) => api.state.set({ [SCREEN_FIELD]: id }),
    onChange: () => { if (bitrate) bitrate.update(); },
  });
  const caps = callBitrate(remotes, { enabled: params.get('cap') !== 'off', isScreen: share.isScreenSender });
  bitrate = caps;
  const speakers = watchSpeakers(remotes);
  // Each round of quality stats also re-checks the caps (a camera switched to another size) and
  // takes down the screens of people who dropped.
  const quality = watchQuality(remotes, {
    onSample: () => {
      caps.update();
      share.prune(new Set(remotes.keys()));
    },
  });

  api.onRemote((/** @type {Remote} */ r) => {
    share.peerAdded(r);
    const s = api.state.remote.get(r.peer.id);
    if (s && typeof s[SCREEN_FIELD] === 'string') share.announced(r, s[SCREEN_FIELD]);
    // A description gives the senders their encodings: the picture's scale goes on before the
    // encoder starts; the bit rate once the connection is up and a frame is out (bitrate.js).
    r.peer.pc.addEventListener('signalingstatechange', () => caps.update());
    r.peer.pc.addEventListener('connectionstatechange', () => {
      if (r.peer.pc.connectionState === 'connected') caps.update();
    });
    caps.update();
  });
  api.onRemoteGone((/** @type {Remote} */ r) => {
    share.peerGone(r.peer.id);
    caps.update();
  });
  api.claimTrack((/** @type {Remote} */ r, /** @type {MediaStreamTrack} */ track, /** @type {readonly MediaStream[]} */ streams) => share.track(r, track, streams));
  api.state.onChange((/** @type {string} */ id, /** @type {Object<string, any>} */ s) => {
    const r = remotes.get(id);
    if (r) share.announced(r, typeof s[SCREEN_FIELD] === 'string' ? s[SCREEN_FIELD] : '');
  });
  api.onLeave(() => {
    share.close();
    speakers.stop();
    quality.stop();
  });
  return { callMedia: { share, bitrate: caps, speakers, quality } };
}
