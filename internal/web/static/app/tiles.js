// tiles.js: the call's tiles and the layout that fills the stage (app.js). A Tile is one
// person (or, for share.js, one shared screen): a video, initials in place of the video when
// the camera is off, the name, a microphone-off sign, the connection state in words, and a
// row of badges other modules add (quality.js: the link's quality). Tiles lays the tiles out
// over the whole #grid, on every resize: a grid whose columns give the largest tiles, the other
// person large with oneself small in a corner when there are two, or a spotlight (one large
// tile, e.g. a shared screen, the others in a strip beside it or below it on a phone).
//
// Hooks: .tile[data-peer] (data-state: the connection; data-mic and data-cam: on or off;
// data-kind: camera or screen; data-route: direct or relay), .tile .name, .tile .state (the
// connection in words), .tile .muted-sign (shown with data-mic="off"), .tile .avatar
// .initials (shown with data-cam="off"), .tile .badges, #grid[data-layout] (grid, pair,
// spotlight).

import { initials } from '/app/page.js';

/** Gap between tiles and around the picture-in-picture tile, px. */
const GAP = 8;
/** Tile shapes a grid may use (width / height): wide as a camera, down to portrait. */
const ASPECTS = [16 / 9, 4 / 3, 1, 3 / 4];

/** What a connection state reads as, for people. */
const STATE_WORDS = /** @type {Object<string, string>} */ ({
  new: 'Connecting…',
  connecting: 'Connecting…',
  connected: 'Connected',
  disconnected: 'Connection interrupted — trying again…',
  failed: 'Could not connect',
  closed: 'Disconnected',
  reconnecting: 'Reconnecting…',
});

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An icon from the page's sprite (#icon-NAME in index.html), hidden from screen readers.
 * @param {string} name @returns {SVGSVGElement}
 */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const use = document.createElementNS(SVG_NS, 'use');
  use.setAttribute('href', `#icon-${name}`);
  svg.append(use);
  return svg;
}

/** One tile: a person's camera (or a shared screen) with what the others need to know. */
export class Tile {
  /**
   * @param {{id: string, name: string, local?: boolean, kind?: 'camera'|'screen', element?: HTMLElement}} o
   *   element: an existing tile to take over (the local tile of index.html)
   */
  constructor(o) {
    const el = o.element || document.createElement('figure');
    el.classList.add('tile');
    el.classList.toggle('local', !!o.local);
    el.classList.toggle('remote', !o.local);
    el.dataset.kind = o.kind || 'camera';
    if (!o.local) el.dataset.peer = o.id;
    /** The tile's element. @type {HTMLElement} */
    this.el = el;
    /** Whether this is the local person's own tile. */
    this.local = !!o.local;
    /** @type {HTMLVideoElement} */
    this.video = /** @type {HTMLVideoElement} */ (el.querySelector('video') || document.createElement('video'));
    this.video.autoplay = true;
    this.video.playsInline = true;
    if (this.local) this.video.muted = true;
    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    /** @private */ this._initials = document.createElement('span');
    this._initials.className = 'initials';
    avatar.append(this._initials);
    const badges = document.createElement('div');
    badges.className = 'badges';
    /** Where other modules put their badges (badge()). @type {HTMLElement} */
    this.badges = badges;
    const cap = el.querySelector('figcaption') || document.createElement('figcaption');
    cap.replaceChildren();
    const muted = document.createElement('span');
    muted.className = 'muted-sign';
    muted.setAttribute('role', 'img');
    muted.setAttribute('aria-label', 'Microphone off');
    muted.append(icon('mic-off'));
    /** @private */ this._name = document.createElement('span');
    this._name.className = 'name';
    /** @private */ this._state = document.createElement('span');
    this._state.className = 'state';
    cap.append(muted, this._name, this._state);
    el.replaceChildren(this.video, avatar, badges, cap);
    this.setName(o.name);
    this.setMic(true);
    this.setCam(true);
  }

  /** @param {string} name */
  setName(name) {
    this._name.textContent = name;
    this._initials.textContent = initials(name);
  }

  /** @returns {string} */
  get name() { return this._name.textContent || ''; }

  /** Shows or hides the microphone-off sign. @param {boolean} on */
  setMic(on) { this.el.dataset.mic = on ? 'on' : 'off'; }

  /** With the camera off, initials and the name show instead of the video. @param {boolean} on */
  setCam(on) { this.el.dataset.cam = on ? 'on' : 'off'; }

  /**
   * The connection to this person, in words (an RTCPeerConnectionState, or "reconnecting"
   * while a person who dropped may come back).
   * @param {string} state
   */
  setState(state) {
    this.el.dataset.state = state;
    this._state.textContent = STATE_WORDS[state] || state;
  }

  /** How the connection goes: "direct" or "relay" (a title on the tile, not jargon in it). @param {string} how */
  setRoute(how) {
    this.el.dataset.route = how;
    this._state.title = how === 'relay' ? 'Connected through the server’s relay' : how === 'direct' ? 'Connected directly' : '';
  }

  /**
   * The badge named key on this tile (created empty the first time): an element in the
   * tile's top-right row for a module's indicator (quality, ...).
   * @param {string} key @returns {HTMLElement}
   */
  badge(key) {
    let b = /** @type {HTMLElement|null} */ (this.badges.querySelector(`[data-badge="${CSS.escape(key)}"]`));
    if (!b) {
      b = document.createElement('span');
      b.className = 'badge';
      b.dataset.badge = key;
      this.badges.append(b);
    }
    return b;
  }
}

/** Lays the tiles out over the whole stage, again on every change and resize. */
export class Tiles {
  /** @param {HTMLElement} grid */
  constructor(grid) {
    /** @type {HTMLElement} */
    this.grid = grid;
    /** The tiles in order of arrival (the local one first). @type {Tile[]} */
    this.list = [];
    /** The tile shown large, or null. @type {Tile|null} */
    this.spot = null;
    /** @private */ this._queued = false;
    new ResizeObserver(() => this.layout()).observe(grid);
  }

  /** @param {Tile} tile */
  add(tile) {
    if (!this.list.includes(tile)) this.list.push(tile);
    if (!tile.el.isConnected) this.grid.append(tile.el);
    this.layout();
  }

  /** @param {Tile} tile */
  remove(tile) {
    this.list = this.list.filter((t) => t !== tile);
    if (this.spot === tile) this.spot = null;
    tile.el.remove();
    this.layout();
  }

  /**
   * Shows tile large with the others in a strip beside it (below it on a portrait screen);
   * null goes back to the grid. For share.js's presenter.
   * @param {Tile|null} tile
   */
  spotlight(tile) {
    this.spot = tile && this.list.includes(tile) ? tile : null;
    for (const t of this.list) t.el.classList.toggle('spot', t === this.spot);
    this.layout();
  }

  /** Lays the tiles out at the next frame (several changes, one layout). */
  layout() {
    if (this._queued) return;
    this._queued = true;
    requestAnimationFrame(() => { this._queued = false; this.layoutNow(); });
    // A page in the background gets no frames: lay out anyway, a little later.
    setTimeout(() => { if (this._queued) { this._queued = false; this.layoutNow(); } }, 150);
  }

  /** Lays the tiles out now. */
  layoutNow() {
    const W = this.grid.clientWidth, H = this.grid.clientHeight;
    const tiles = this.list.filter((t) => !t.el.hidden);
    if (W <= 0 || H <= 0 || tiles.length === 0) return;
    /** @type {Map<Tile, {x: number, y: number, w: number, h: number}>} */
    const at = new Map();
    let mode = 'grid';
    if (this.spot && tiles.includes(this.spot) && tiles.length > 1) {
      mode = 'spotlight';
      const rest = tiles.filter((t) => t !== this.spot);
      const wide = W >= H;
      const strip = wide ? Math.min(Math.max(W * 0.22, 120), 280) : Math.min(Math.max(H * 0.2, 90), 180);
      if (wide) {
        at.set(this.spot, { x: 0, y: 0, w: W - strip - GAP, h: H });
        place(at, rest, W - strip, 0, strip, H);
      } else {
        at.set(this.spot, { x: 0, y: 0, w: W, h: H - strip - GAP });
        place(at, rest, 0, H - strip, W, strip);
      }
    } else if (tiles.length === 2 && tiles.some((t) => t.local)) {
      // Two people: the other one fills the stage, oneself small in a corner.
      mode = 'pair';
      const me = /** @type {Tile} */ (tiles.find((t) => t.local));
      const other = /** @type {Tile} */ (tiles.find((t) => !t.local));
      at.set(other, { x: 0, y: 0, w: W, h: H });
      const w = Math.round(Math.min(Math.max(W * 0.24, 96), 240));
      const h = Math.round(W >= H ? w * 3 / 4 : w * 4 / 3);
      at.set(me, { x: W - w - GAP, y: H - h - GAP, w, h });
    } else {
      place(at, tiles, 0, 0, W, H);
    }
    this.grid.dataset.layout = mode;
    for (const t of this.list) {
      const r = at.get(t);
      t.el.classList.toggle('pip', mode === 'pair' && t.local);
      if (!r) continue;
      const s = t.el.style;
      s.left = `${Math.round(r.x)}px`;
      s.top = `${Math.round(r.y)}px`;
      s.width = `${Math.round(r.w)}px`;
      s.height = `${Math.round(r.h)}px`;
    }
  }
}

/**
 * Places tiles in the box (x, y, W, H) as a grid: the number of columns and the tile shape
 * (one of ASPECTS) that give the largest tiles, the whole centred, a short last row too.
 * @param {Map<Tile, {x: number, y: number, w: number, h: number}>} at
 * @param {Tile[]} tiles @param {number} x @param {number} y @param {number} W @param {number} H
 */
function place(at, tiles, x, y, W, H) {
  const n = tiles.length;
  if (n === 0) return;
  let best = { area: -1, cols: 1, rows: 1, w: 0, h: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cw = (W - (cols - 1) * GAP) / cols, ch = (H - (rows - 1) * GAP) / rows;
    if (cw <= 0 || ch <= 0) continue;
    for (const a of ASPECTS) {
      // The largest tile of shape a in the cell (w/h = a); a cell is filled when its own
      // shape lies between the widest and the tallest shape allowed.
      let w = Math.min(cw, ch * a), h = w / a;
      const ca = cw / ch;
      if (ca <= ASPECTS[0] && ca >= ASPECTS[ASPECTS.length - 1]) { w = cw; h = ch; }
      if (w * h > best.area + 0.5) best = { area: w * h, cols, rows, w, h };
    }
  }
  const { cols, rows, w, h } = best;
  const top = y + (H - (rows * h + (rows - 1) * GAP)) / 2;
  tiles.forEach((t, i) => {
    const row = Math.floor(i / cols);
    const inRow = row === rows - 1 ? n - row * cols : cols;
    const left = x + (W - (inRow * w + (inRow - 1) * GAP)) / 2;
    at.set(t, { x: left + (i % cols) * (w + GAP), y: top + row * (h + GAP), w, h });
  });
}
