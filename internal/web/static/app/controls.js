// controls.js: the call's controls bar and keyboard shortcuts (app.js). Every control is a
// labelled button (its words stay in it for screen readers when a narrow screen shows only
// its icon); a toggle's words say what pressing it does ("Mute" / "Unmute"). Shortcuts work
// anywhere but in a text field, and the help overlay (?, or the Shortcuts button) lists them
// all, those other modules add included (share.js: S).

import { $ } from '/app/page.js';
import { icon } from '/app/tiles.js';

/**
 * @typedef {Object} ControlSpec
 * @property {string} id the button's id
 * @property {string} label its words
 * @property {string} icon an icon of index.html's sprite (#icon-NAME)
 * @property {() => void} onClick
 * @property {string} [key] a shortcut (see Controls.shortcut) that presses it
 * @property {string} [before] the id of the button to put it before (default: the Chat button)
 */

/** The keys of a keydown as a shortcut name: "m", "shift+l", "?", "escape". @param {KeyboardEvent} ev */
function keyName(ev) {
  const k = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key.toLowerCase();
  return ev.shiftKey && /^[a-z]$/.test(k) ? `shift+${k}` : k;
}

/** How a shortcut is written for people ("Shift + L"). @param {string} key */
export function keyLabel(key) {
  return key.split('+').map((p) => (p === 'shift' ? 'Shift' : p.length === 1 ? p.toUpperCase() : p[0].toUpperCase() + p.slice(1))).join(' + ');
}

/** The controls bar (#controls) with its shortcuts and the help overlay (#help-dialog). */
export class Controls {
  constructor() {
    /** @type {HTMLElement} */
    this.bar = $('controls-main');
    /** @private @type {Map<string, {what: string, fn: () => void}>} */
    this._keys = new Map();
    /** @private */ this._on = true;
    const dialog = /** @type {HTMLDialogElement} */ ($('help-dialog'));
    /** @private */ this._dialog = dialog;
    $('help-close').addEventListener('click', () => dialog.close());
    document.addEventListener('keydown', (ev) => this._key(ev));
  }

  /**
   * Adds a button to the bar (before the Chat button unless said otherwise), with a shortcut
   * if given. For share.js: controls.add({id: 'share', label: 'Share screen', icon:
   * 'share', key: 's', onClick}).
   * @param {ControlSpec} spec @returns {HTMLButtonElement}
   */
  add(spec) {
    const b = document.createElement('button');
    b.type = 'button';
    b.id = spec.id;
    b.className = 'ctl';
    const lbl = document.createElement('span');
    lbl.className = 'lbl';
    b.append(icon(spec.icon), lbl);
    setLabel(b, spec.label, spec.icon);
    b.addEventListener('click', spec.onClick);
    const before = document.getElementById(spec.before || 'chat-toggle');
    if (before && before.parentElement === this.bar) this.bar.insertBefore(b, before);
    else this.bar.append(b);
    if (spec.key) this.shortcut(spec.key, spec.label, () => b.click(), b);
    return b;
  }

  /**
   * A keyboard shortcut: key is "m", "shift+l", "?" (no Ctrl/Alt/Meta: those stay the
   * browser's). what is how the help overlay describes it.
   * @param {string} key @param {string} what @param {() => void} fn
   * @param {HTMLElement} [button] the control it presses (gets aria-keyshortcuts)
   */
  shortcut(key, what, fn, button) {
    this._keys.set(key, { what, fn });
    if (button) button.setAttribute('aria-keyshortcuts', keyLabel(key).replace(/ \+ /g, '+'));
    this._renderHelp();
  }

  /** Turns the shortcuts off (after leaving) or on. @param {boolean} on */
  enable(on) { this._on = on; }

  /** Opens the help overlay. */
  help() {
    if (!this._dialog.open) this._dialog.showModal();
  }

  /** @private */
  _renderHelp() {
    const list = $('help-keys');
    list.replaceChildren();
    for (const [key, { what }] of this._keys) {
      const dt = document.createElement('dt');
      const kbd = document.createElement('kbd');
      kbd.textContent = keyLabel(key);
      dt.append(kbd);
      const dd = document.createElement('dd');
      dd.textContent = what;
      list.append(dt, dd);
    }
  }

  /** @private @param {KeyboardEvent} ev */
  _key(ev) {
    if (!this._on || ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat || ev.isComposing) return;
    if (this._dialog.open || document.querySelector('dialog[open]')) return; // the dialog's own keys
    const t = /** @type {HTMLElement|null} */ (ev.target instanceof HTMLElement ? ev.target : null);
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const k = this._keys.get(keyName(ev));
    if (!k) return;
    ev.preventDefault();
    k.fn();
  }
}

/**
 * Sets a control's words (and icon): shown beside the icon, or only to screen readers on a
 * narrow screen.
 * @param {HTMLElement} b @param {string} label @param {string} [iconName]
 */
export function setLabel(b, label, iconName) {
  const lbl = b.querySelector('.lbl');
  if (lbl) lbl.textContent = label;
  b.title = b.getAttribute('aria-keyshortcuts') ? `${label} (${b.getAttribute('aria-keyshortcuts')})` : label;
  if (iconName) {
    const use = b.querySelector('svg use');
    if (use) use.setAttribute('href', `#icon-${iconName}`);
  }
}
