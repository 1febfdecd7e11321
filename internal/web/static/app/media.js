// media.js: the call's media (app.js): the local camera and microphone (LocalMedia: on/off,
// switching devices mid-call without renegotiating), where sound plays, the microphone level
// meter, playing remote video (muted with an Unmute button when autoplay with sound is
// refused) and the route of a pair (direct or through the relay).

import { remember, recall, openTrack, deviceOf, canPickSpeaker } from '/app/devices.js';

/** @typedef {import('/sdk/switchboard.js').Peer} Peer */

/**
 * The local camera and microphone of a call: one MediaStream whose tracks every peer
 * connection sends. Muting disables the microphone's track. Turning the camera off stops its
 * track, so the camera's light goes off; the ended track stays in the stream and its senders
 * (a peer that comes meanwhile gets it too), and turning it on opens the camera again and
 * gives every sender the new track. Switching devices replaces the track in every sender
 * (RTCRtpSender.replaceTrack). Neither makes a new offer.
 */
export class LocalMedia {
  /** @param {MediaStream} stream @param {{mic?: boolean, cam?: boolean, speaker?: string}} [init] */
  constructor(stream, init = {}) {
    /** The stream every peer gets. @type {MediaStream} */
    this.stream = stream;
    /** Whether the microphone is on (its track enabled). */
    this.mic = init.mic !== false;
    /** Whether the camera is on. */
    this.cam = init.cam !== false;
    /** The sound output chosen ('' for the default). */
    this.speaker = init.speaker || '';
    /** The camera to open when it is turned on again. @private */
    this._camId = deviceOf(this.video);
    /** The camera and microphone changes, one after the other (_serial). @private @type {Promise<any>} */
    this._ops = Promise.resolve();
    /** Set by stop(): a device that opens after it is stopped at once. @private */
    this._closed = false;
    this._apply();
    if (!this.cam && this.video) this.video.stop(); // joined with the camera off: light off
  }

  /** @returns {MediaStreamTrack|null} */
  get audio() { return this.stream.getAudioTracks()[0] || null; }

  /** @returns {MediaStreamTrack|null} */
  get video() { return this.stream.getVideoTracks()[0] || null; }

  /** @private */
  _apply() {
    for (const t of this.stream.getAudioTracks()) t.enabled = this.mic;
    for (const t of this.stream.getVideoTracks()) t.enabled = this.cam;
  }

  /** @param {boolean} on */
  setMic(on) { this.mic = on; this._apply(); }

  /** The camera chosen: the live one's device, else the one to open when it is turned on. */
  get cameraId() {
    const v = this.video;
    return (v && v.readyState === 'live' && deviceOf(v)) || this._camId;
  }

  /**
   * Runs op after every camera and microphone change asked for before it, so that two never
   * interleave (a quick on-off-on, a device switch while the camera opens).
   * @private @template T @param {() => Promise<T>} op @returns {Promise<T>}
   */
  _serial(op) {
    const run = this._ops.then(op);
    this._ops = run.catch(() => {});
    return run;
  }

  /**
   * Turns the camera off (its track stops) or on (the camera chosen last opens again, or id's,
   * and every peer sends it: replaceTrack, or addTrack if there was no camera yet, which
   * negotiates). Rejects, with the camera still off, when it cannot be opened.
   * @param {boolean} on @param {() => Iterable<Peer>} peers the peers, asked once the camera is open
   * @param {string} [id]
   */
  setCam(on, peers, id) {
    return this._serial(() => this._setCam(on, peers, id));
  }

  /** Turns the camera on if it is off (or absent), off if it is on. @param {() => Iterable<Peer>} peers */
  toggleCam(peers) {
    return this._serial(() => {
      const v = this.video;
      return this._setCam(!(this.cam && v && v.readyState === 'live'), peers);
    });
  }

  /** @private @param {boolean} on @param {() => Iterable<Peer>} peers @param {string} [id] */
  async _setCam(on, peers, id) {
    const v = this.video;
    if (!on) {
      this.cam = false;
      if (v) {
        this._camId = deviceOf(v) || this._camId;
        v.stop();
      }
      return;
    }
    if (v && v.readyState === 'live' && (!id || deviceOf(v) === id)) {
      this.cam = true;
      this._apply();
      return;
    }
    this.cam = true;
    try {
      await this._switch('video', id || this._camId || await recall('camera'), peers);
    } catch (e) {
      this.cam = false;
      throw e;
    }
  }

  /**
   * Sends the local tracks to a new peer.
   * @param {Peer} peer
   */
  sendTo(peer) {
    for (const t of this.stream.getTracks()) peer.addTrack(t, this.stream);
  }

  /**
   * Switches the camera ('video') or microphone ('audio') to device id, remembered for next
   * time. Every sender of the old track gets the new one (replaceTrack: the others see the
   * new camera without a new offer); a kind there was no track of (refused at first) is
   * added to every peer, which does negotiate. With the camera off, only remembers it.
   * @param {'video'|'audio'} kind @param {string} id @param {() => Iterable<Peer>} peers
   *   the peers, asked once the device is open @param {string} [label] the device's name
   * @returns {Promise<MediaStreamTrack|null>} the track now sent
   */
  switchDevice(kind, id, peers, label = '') {
    return this._serial(() => this._switch(kind, id, peers, label));
  }

  /**
   * @private @param {'video'|'audio'} kind @param {string} id @param {() => Iterable<Peer>} peers
   * @param {string} [label] @returns {Promise<MediaStreamTrack|null>}
   */
  async _switch(kind, id, peers, label = '') {
    const old = kind === 'video' ? this.video : this.audio;
    if (old && deviceOf(old) === id && old.readyState === 'live') return old;
    if (kind === 'video' && !this.cam && old) {
      this._camId = id; // the camera is off: this one opens when it is turned on
      if (label) remember('camera', id, label);
      return old;
    }
    const track = await openTrack(kind, id);
    if (this._closed) { // the call ended meanwhile
      track.stop();
      return null;
    }
    if (kind === 'video') this._camId = deviceOf(track) || id;
    track.enabled = kind === 'video' ? this.cam : this.mic;
    remember(kind === 'video' ? 'camera' : 'mic', deviceOf(track) || id, track.label);
    /** @type {Promise<void>[]} */
    const waits = [];
    for (const peer of peers()) {
      const sender = old && peer.pc.getSenders().find((s) => s.track === old);
      if (sender) waits.push(sender.replaceTrack(track));
      else peer.addTrack(track, this.stream);
    }
    if (old) this.stream.removeTrack(old);
    this.stream.addTrack(track);
    await Promise.all(waits);
    if (old) old.stop();
    return track;
  }

  /**
   * Plays sound through output device id (HTMLMediaElement.setSinkId) on every element given,
   * remembered for next time and for the videos of peers that come later (sinkTo).
   * @param {string} id @param {string} label @param {Iterable<HTMLMediaElement>} elements
   */
  async setSpeaker(id, label, elements) {
    this.speaker = id;
    remember('speaker', id, label);
    await Promise.all([...elements].map((el) => this.sinkTo(el)));
  }

  /** Plays el's sound on the chosen output. @param {HTMLMediaElement} el */
  async sinkTo(el) {
    if (!canPickSpeaker || !this.speaker) return;
    const m = /** @type {HTMLMediaElement & {setSinkId(id: string): Promise<void>, sinkId: string}} */ (el);
    if (m.sinkId === this.speaker) return;
    try { await m.setSinkId(this.speaker); } catch (e) { console.warn('switchboard: speaker:', e instanceof Error ? e.message : e); }
  }

  /** Stops every track (the camera light goes off), and any still opening once it opens. */
  stop() {
    this._closed = true;
    for (const t of this.stream.getTracks()) t.stop();
  }
}

/**
 * Measures the loudness of the stream's microphone ten times a second and calls onLevel with
 * 0..1; returns the function that stops it. The AudioContext starts on the page's first
 * click or key press where the browser asks for one.
 * @param {MediaStream} stream @param {(level: number) => void} onLevel @returns {() => void}
 */
export function levelMeter(stream, onLevel) {
  const track = stream.getAudioTracks()[0];
  if (!track || typeof AudioContext === 'undefined') return () => {};
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  const wake = () => { ctx.resume().catch(() => {}); };
  wake();
  document.addEventListener('pointerdown', wake);
  document.addEventListener('keydown', wake);
  const timer = setInterval(() => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const rms = Math.sqrt(sum / buf.length);
    // About -50 dBFS reads 0, -10 dBFS and louder reads 1.
    const db = 20 * Math.log10(rms || 1e-9);
    onLevel(track.enabled ? Math.max(0, Math.min(1, (db + 50) / 40)) : 0);
  }, 100);
  return () => {
    clearInterval(timer);
    document.removeEventListener('pointerdown', wake);
    document.removeEventListener('keydown', wake);
    src.disconnect();
    ctx.close().catch(() => {});
  };
}

/**
 * Shows the camera of a local stream in video (muted), or nothing when it has none: a video
 * element given a stream without tracks would hold the page's load event for ever.
 * @param {HTMLVideoElement} video @param {MediaStream} stream
 */
export function preview(video, stream) {
  video.muted = true;
  const v = stream.getVideoTracks()[0];
  if (!v) {
    video.srcObject = null;
    return;
  }
  if (!(video.srcObject instanceof MediaStream) || video.srcObject.getVideoTracks()[0] !== v) video.srcObject = new MediaStream([v]);
  video.play().catch(() => {});
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
    b.textContent = 'Turn on sound';
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
