// prejoin.js: the screen before a call (/r/{room}, app.js): the camera's preview, the
// microphone's live level, pickers for the camera, microphone and speaker (remembered in
// localStorage by devices.js), the name, and whether to join with the microphone or camera
// off. A camera or microphone the browser refuses or does not have is said in words, with
// Try again (which asks again) — and Join works without them.
//
// Hooks: body[data-view="prejoin"], #preview-video, #pre-mic and #pre-camera (data-on),
// #mic-level (a <meter>, 0..1), #pick-camera, #pick-mic, #pick-speaker, #media-problem (shown
// with the message) and #media-retry, #name-input, #name-submit (Join now),
// body[data-media] (ready once the devices were asked for: "both", "video", "audio", "none").

import { $, show, initials } from '/app/page.js';
import { openMedia, openTrack, problemText, fillPickers, deviceOf, remember, recall } from '/app/devices.js';
import { levelMeter, preview } from '/app/media.js';
import { setLabel } from '/app/controls.js';

/**
 * @typedef {Object} Ready
 * @property {string} name
 * @property {MediaStream} stream the camera and microphone there are (maybe none)
 * @property {boolean} mic whether to join with the microphone on
 * @property {boolean} cam whether to join with the camera on
 * @property {string} speaker the sound output chosen ('' for the default)
 */

/**
 * Shows the pre-join screen of room and resolves when the person presses Join.
 * @param {string} room @param {{name: string, fixedName: boolean}} who fixedName: the name is
 *   the invitation's and cannot be changed here
 * @returns {Promise<Ready>}
 */
export function prejoin(room, who) {
  show('prejoin');
  document.title = `Join ${room} · Switchboard`;
  $('prejoin-room').textContent = room;
  const video = /** @type {HTMLVideoElement} */ ($('preview-video'));
  const tile = $('preview-tile');
  const nameInput = /** @type {HTMLInputElement} */ ($('name-input'));
  const meter = /** @type {HTMLMeterElement} */ ($('mic-level'));
  const micBtn = $('pre-mic'), camBtn = $('pre-camera');
  const pickers = {
    camera: /** @type {HTMLSelectElement} */ ($('pick-camera')),
    mic: /** @type {HTMLSelectElement} */ ($('pick-mic')),
    speaker: /** @type {HTMLSelectElement} */ ($('pick-speaker')),
  };
  nameInput.value = who.name;
  nameInput.readOnly = who.fixedName;
  let mic = true, cam = true;
  /** @type {MediaStream} */
  let stream = new MediaStream();
  let stopMeter = () => {};

  const showInitials = () => { $('preview-initials').textContent = initials(nameInput.value || '?'); };
  nameInput.addEventListener('input', showInitials);
  showInitials();

  const render = () => {
    const v = stream.getVideoTracks()[0], a = stream.getAudioTracks()[0];
    if (v) v.enabled = cam;
    if (a) a.enabled = mic;
    tile.dataset.cam = v && cam ? 'on' : 'off';
    micBtn.dataset.on = String(mic && !!a);
    camBtn.dataset.on = String(cam && !!v);
    /** @type {HTMLButtonElement} */ (micBtn).disabled = !a;
    /** @type {HTMLButtonElement} */ (camBtn).disabled = !v;
    setLabel(micBtn, !a ? 'No microphone' : mic ? 'Mute' : 'Unmute', mic && a ? 'mic' : 'mic-off');
    setLabel(camBtn, !v ? 'No camera' : cam ? 'Turn camera off' : 'Turn camera on', cam && v ? 'cam' : 'cam-off');
    document.body.dataset.media = v && a ? 'both' : v ? 'video' : a ? 'audio' : 'none';
  };

  const meterOn = () => {
    stopMeter();
    stopMeter = levelMeter(stream, (level) => { meter.value = level; });
  };

  let speaker = '';
  const pickersNow = async () => {
    speaker = speaker || await recall('speaker');
    await fillPickers(pickers, { camera: deviceOf(stream.getVideoTracks()[0]), mic: deviceOf(stream.getAudioTracks()[0]), speaker });
  };

  /** Asks for the camera and microphone (again). */
  const open = async () => {
    for (const t of stream.getTracks()) t.stop();
    const got = await openMedia();
    stream = got.stream;
    if (!cam) stream.getVideoTracks().forEach((t) => t.stop()); // off: asked, but the light stays off
    preview(video, stream);
    const text = problemText(got);
    $('media-problem-text').textContent = text;
    $('media-problem').hidden = !text;
    render();
    meterOn();
    await pickersNow();
  };
  /** @param {unknown} e */
  const oops = (e) => { console.warn('switchboard: devices:', e instanceof Error ? e.message : e); };
  let opening = open().catch(oops);
  const onDevices = () => { pickersNow().catch(() => {}); };
  navigator.mediaDevices?.addEventListener?.('devicechange', onDevices);

  $('media-retry').addEventListener('click', () => { opening = opening.then(open).catch(oops); });
  micBtn.addEventListener('click', () => { mic = !mic; render(); });
  // Camera off stops its track (the light goes off; the ended track stays in the stream, so
  // the call knows which camera to open again); on opens it again.
  camBtn.addEventListener('click', () => {
    opening = opening.then(async () => {
      const v = stream.getVideoTracks()[0];
      cam = !cam;
      if (v && !cam) v.stop();
      if (v && cam && v.readyState === 'ended') {
        try {
          const t = await openTrack('video', deviceOf(v));
          stream.removeTrack(v);
          stream.addTrack(t);
          preview(video, stream);
        } catch (e) {
          cam = false;
          $('media-problem-text').textContent = problemText({ stream, videoError: /** @type {Error} */ (e), audioError: null });
          $('media-problem').hidden = false;
        }
      }
      render();
    }).catch(oops);
  });

  /** @param {'video'|'audio'} kind @param {HTMLSelectElement} sel */
  const switchTo = (kind, sel) => {
    opening = opening.then(async () => {
      const old = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      if (old && deviceOf(old) === sel.value) return;
      try {
        const t = await openTrack(kind, sel.value);
        if (kind === 'video' && !cam) t.stop(); // the camera is off: keep only which one
        if (old) { stream.removeTrack(old); old.stop(); }
        stream.addTrack(t);
        remember(kind === 'video' ? 'camera' : 'mic', deviceOf(t) || sel.value, t.label);
        preview(video, stream);
        render();
        if (kind === 'audio') meterOn();
      } catch (e) {
        $('media-problem-text').textContent = problemText({
          stream, videoError: kind === 'video' ? /** @type {Error} */ (e) : null, audioError: kind === 'audio' ? /** @type {Error} */ (e) : null,
        });
        $('media-problem').hidden = false;
      }
    }).catch(oops);
  };
  pickers.camera.addEventListener('change', () => switchTo('video', pickers.camera));
  pickers.mic.addEventListener('change', () => switchTo('audio', pickers.mic));
  pickers.speaker.addEventListener('change', () => {
    speaker = pickers.speaker.value;
    remember('speaker', speaker, pickers.speaker.selectedOptions[0]?.textContent || '');
  });

  if (!who.fixedName && !nameInput.value) nameInput.focus();
  else $('name-submit').focus();

  return new Promise((resolve) => {
    $('name-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = nameInput.value.trim();
      if (!name) { nameInput.focus(); return; }
      // What is chosen is final now: no button changes the stream behind the call's back.
      for (const id of ['name-submit', 'pre-mic', 'pre-camera', 'media-retry']) /** @type {HTMLButtonElement} */ ($(id)).disabled = true;
      opening.then(() => {
        stopMeter();
        navigator.mediaDevices?.removeEventListener?.('devicechange', onDevices);
        video.srcObject = null;
        resolve({ name, stream, mic, cam, speaker });
      });
    });
  });
}
