// devices.js: the cameras, microphones and speakers of the web app (app.js, prejoin.js,
// media.js): opening them with the person's choices (remembered in localStorage), what to
// say when the browser refuses or has none, and the pickers (<select>) that list them.
//
// The camera and the microphone are asked for together (one prompt); if that fails each is
// asked for alone, so a refused or missing camera still leaves the microphone (and the other
// way round), and the message says which one is missing and what to do.

/**
 * localStorage keys of the chosen devices: the deviceId, and beside it (KEY + ".label") the
 * device's label, for a browser that gives the page new ids after a reload.
 */
export const PREF = {
  camera: 'switchboard.camera',
  mic: 'switchboard.mic',
  speaker: 'switchboard.speaker',
};

/** @type {{camera: MediaDeviceKind, mic: MediaDeviceKind, speaker: MediaDeviceKind}} */
const KINDS = { camera: 'videoinput', mic: 'audioinput', speaker: 'audiooutput' };

/** @param {string} key @returns {string} */
export function pref(key) {
  try { return localStorage.getItem(key) || ''; } catch { return ''; }
}

/** @param {string} key @param {string} value */
export function setPref(key, value) {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch { /* storage blocked: not remembered */ }
}

/**
 * Remembers the device chosen for camera, mic or speaker.
 * @param {'camera'|'mic'|'speaker'} key @param {string} id @param {string} label
 */
export function remember(key, id, label) {
  setPref(PREF[key], id);
  setPref(`${PREF[key]}.label`, label);
}

/**
 * The deviceId of the remembered camera, mic or speaker among the devices there are now (by
 * id, else by label), or '' when it is not there.
 * @param {'camera'|'mic'|'speaker'} key @returns {Promise<string>}
 */
export async function recall(key) {
  const id = pref(PREF[key]), label = pref(`${PREF[key]}.label`);
  if (!id && !label) return '';
  /** @type {MediaDeviceInfo[]} */
  let list = [];
  try { list = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === KINDS[key] && d.deviceId); } catch { return ''; }
  const d = list.find((x) => x.deviceId === id) || (label ? list.find((x) => x.label === label) : undefined);
  return d ? d.deviceId : '';
}

/**
 * Puts the remembered camera and microphone in stream in place of what the browser gave
 * (the ids may have changed since: found by label).
 * @param {MediaStream} stream
 */
async function preferred(stream) {
  for (const [key, kind] of /** @type {Array<['camera'|'mic', 'video'|'audio']>} */ ([['camera', 'video'], ['mic', 'audio']])) {
    const old = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    if (!old) continue;
    const id = await recall(key);
    if (!id || id === deviceOf(old)) continue;
    try {
      const t = await openTrack(kind, id);
      stream.removeTrack(old);
      old.stop();
      stream.addTrack(t);
    } catch { /* keep what the browser gave */ }
  }
}

/**
 * @typedef {Object} Opened
 * @property {MediaStream} stream what could be opened (maybe no track at all)
 * @property {DOMException|Error|null} videoError why there is no camera track
 * @property {DOMException|Error|null} audioError why there is no microphone track
 */

/**
 * Constraints for one kind: the chosen device when there is one (ideal, so a device that is
 * gone falls back to another), else any (the browser's default size: the bitrate and size a
 * sender uses are set on its RTCRtpSender).
 * @param {string} id @returns {MediaTrackConstraints|boolean}
 */
function want(id) {
  return id ? { deviceId: { ideal: id } } : true;
}

/**
 * Opens the camera and the microphone (the ids chosen, or the remembered ones).
 * @param {{camera?: string, mic?: string, video?: boolean, audio?: boolean}} [opts]
 * @returns {Promise<Opened>}
 */
export async function openMedia(opts = {}) {
  const camera = opts.camera ?? pref(PREF.camera);
  const mic = opts.mic ?? pref(PREF.mic);
  const video = opts.video !== false, audio = opts.audio !== false;
  const stream = new MediaStream();
  /** @type {Opened} */
  const out = { stream, videoError: null, audioError: null };
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const e = new DOMException('not a secure page', 'SecurityError');
    out.videoError = video ? e : null;
    out.audioError = audio ? e : null;
    return out;
  }
  const md = navigator.mediaDevices;
  if (video && audio) {
    try {
      const s = await md.getUserMedia({ video: want(camera), audio: want(mic) });
      for (const t of s.getTracks()) stream.addTrack(t);
      await preferred(stream);
      return out;
    } catch { /* ask for each alone: one of them may work */ }
  }
  if (video) {
    try {
      for (const t of (await md.getUserMedia({ video: want(camera) })).getTracks()) stream.addTrack(t);
    } catch (e) { out.videoError = /** @type {Error} */ (e); }
  }
  if (audio) {
    try {
      for (const t of (await md.getUserMedia({ audio: want(mic) })).getTracks()) stream.addTrack(t);
    } catch (e) { out.audioError = /** @type {Error} */ (e); }
  }
  await preferred(stream);
  return out;
}

/**
 * Opens one device of a kind (switching mid-call).
 * @param {'video'|'audio'} kind @param {string} id @returns {Promise<MediaStreamTrack>}
 */
export async function openTrack(kind, id) {
  /** @type {MediaTrackConstraints|boolean} */
  const c = id ? { deviceId: { exact: id } } : true;
  const s = await navigator.mediaDevices.getUserMedia(kind === 'video' ? { video: c } : { audio: c });
  return s.getTracks()[0];
}

/**
 * What to tell the person when the camera and/or microphone could not be opened; '' when
 * both are there. Before the call the way to ask again is the Try again button; in the call it
 * is the camera or microphone button.
 * @param {Opened} o @param {boolean} [inCall] @returns {string}
 */
export function problemText(o, inCall = false) {
  const v = o.videoError, a = o.audioError;
  if (!v && !a) return '';
  const what = v && a ? 'camera and microphone' : v ? 'camera' : 'microphone';
  const err = /** @type {DOMException} */ (v || a);
  const again = inCall ? `press the ${v ? 'camera' : 'microphone'} button` : 'press Try again';
  const rest = inCall
    ? (v && a ? 'You are in the call: you see and hear the others and can chat.' : v ? 'The others hear you.' : 'The others see you.')
    : (v && a ? 'You can still join: you will see and hear the others and can chat.' : v ? 'You can still join with your microphone.' : 'You can still join with your camera.');
  switch (err.name) {
    case 'NotAllowedError':
      return `The browser blocked your ${what}. Allow it for this site (the camera icon in the address bar, or the site settings), then ${again}. ${rest}`;
    case 'SecurityError':
      return `The ${what} can only be used on a secure page (HTTPS or localhost). ${rest}`;
    case 'NotFoundError': case 'OverconstrainedError':
      return `No ${what} was found. Plug one in and ${again}. ${rest}`;
    case 'NotReadableError': case 'AbortError':
      return `Your ${what} is in use by another application, or stopped working. Close the other application and ${again}. ${rest}`;
    default:
      return `Your ${what} could not be started (${err.name}). ${rest}`;
  }
}

/** Whether this browser can choose where sound plays (HTMLMediaElement.setSinkId). */
export const canPickSpeaker = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

/**
 * Fills the pickers with the devices there are, each showing the one in use (or chosen).
 * A picker with nothing to choose from is hidden with its label.
 * @param {{camera: HTMLSelectElement, mic: HTMLSelectElement, speaker: HTMLSelectElement}} pickers
 * @param {{camera: string, mic: string, speaker: string}} current the ids in use
 */
export async function fillPickers(pickers, current) {
  /** @type {MediaDeviceInfo[]} */
  let devices = [];
  try { devices = await navigator.mediaDevices.enumerateDevices(); } catch { /* none listed */ }
  /** @type {Array<['camera'|'mic'|'speaker', MediaDeviceKind, string]>} */
  const kinds = [['camera', 'videoinput', 'Camera'], ['mic', 'audioinput', 'Microphone'], ['speaker', 'audiooutput', 'Speaker']];
  for (const [key, kind, word] of kinds) {
    const sel = pickers[key];
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    sel.replaceChildren(...list.map((d, i) => new Option(d.label || `${word} ${i + 1}`, d.deviceId)));
    if (list.some((d) => d.deviceId === current[key])) sel.value = current[key];
    const off = list.length === 0 || (key === 'speaker' && !canPickSpeaker);
    const row = sel.closest('.picker');
    if (row instanceof HTMLElement) row.hidden = off;
    else sel.hidden = off;
  }
}

/**
 * The device id a track comes from ('' when unknown).
 * @param {MediaStreamTrack|undefined|null} track @returns {string}
 */
export function deviceOf(track) {
  if (!track) return '';
  const s = track.getSettings ? track.getSettings() : {};
  return s.deviceId || '';
}
