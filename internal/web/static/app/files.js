// files.js: the call's file sharing (app.js) over transfer.js (docs/file-transfer.md): files
// picked with #file-pick or dropped on the page go to every other peer, one transfer per peer
// at a time; files arriving from a peer (one transfer at a time, as `switchboard recv` takes
// them) show in the chat log with a progress bar, then as download links.

import { sendFiles, receiveFiles } from '/sdk/transfer.js';
import { $, notice, peerName } from '/app/page.js';

/** @typedef {import('/app/page.js').CallView} CallView */
/** @typedef {import('/app/page.js').Remote} Remote */

/** @param {number} n @returns {string} a size such as "1.5 MiB" */
export function humanBytes(n) {
  if (n < 1024) return `${n} B`;
  let v = n, i = -1;
  while (v >= 1024 && i < 4) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${'KMGTP'[i]}iB`;
}

/**
 * Appends to list an entry for one file (li.file, data-state state): before (if any), its
 * name, size, a progress bar and a status; returns how to update it.
 * @param {HTMLElement} list @param {string} name @param {number} size @param {string} state
 * @param {HTMLElement} [before]
 */
export function fileEntry(list, name, size, state, before) {
  const li = document.createElement('li');
  li.className = 'file';
  li.dataset.state = state;
  const n = document.createElement('span');
  n.className = 'file-name';
  n.textContent = name;
  const z = document.createElement('span');
  z.className = 'file-size';
  z.textContent = ` (${humanBytes(size)})`;
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  const st = document.createElement('span');
  st.className = 'file-state';
  if (before) li.append(before);
  li.append(n, z, bar, st);
  list.append(li);
  return {
    li,
    /** @param {number} frac @param {string} text */
    progress(frac, text) {
      bar.value = Math.max(0, Math.min(1, frac));
      st.textContent = text;
    },
    /** @param {string} url */
    link(url) {
      const a = document.createElement('a');
      a.className = 'file-link';
      a.href = url;
      a.download = name;
      a.textContent = name;
      n.replaceChildren(a);
    },
    /** @param {'done'|'failed'} s @param {string} text */
    end(s, text) {
      li.dataset.state = s;
      bar.remove();
      st.textContent = text;
    },
  };
}

/**
 * The file sharing of a call.
 * @param {CallView} view
 */
export function callFiles(view) {
  const { log, remotes } = view;

  /**
   * A chat log entry for one file: who, name, size, a progress bar and a status.
   * @param {string} from @param {string} who @param {string} fileName @param {number} size @param {string} state
   */
  function addFile(from, who, fileName, size, state) {
    const w = document.createElement('span');
    w.className = 'who';
    w.textContent = who;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    const entry = fileEntry(log, fileName, size, state, w);
    entry.li.dataset.from = from;
    if (atBottom) log.scrollTop = log.scrollHeight;
    return entry;
  }

  /**
   * Takes the next file transfer r's peer opens (one at a time, as `switchboard recv` does),
   * then waits for the next one.
   * @param {Remote} r
   */
  function receiveFrom(r) {
    if (view.left || remotes.get(r.peer.id) !== r) return;
    const who = peerName(r.peer);
    /** @type {Map<number, ReturnType<typeof addFile>>} */
    const entries = new Map();
    receiveFiles(r.peer, {
      onProgress(p) {
        let e = entries.get(p.file);
        if (!e) {
          e = addFile(r.peer.id, who, p.name, p.size, 'receiving');
          entries.set(p.file, e);
        }
        if (!p.done) e.progress(p.size ? p.bytes / p.size : 0, `receiving ${Math.floor(p.size ? (p.bytes * 100) / p.size : 0)}%`);
      },
      onFile(f) {
        const i = [...entries.values()].findIndex((e) => e.li.dataset.state === 'receiving');
        const e = i >= 0 ? [...entries.values()][i] : addFile(r.peer.id, who, f.name, f.size, 'receiving');
        e.link(f.url);
        e.end('done', '');
      },
    }).then((results) => results, (err) => {
      console.warn('switchboard: receiving files:', err instanceof Error ? err.message : err);
      return /** @type {any} */ (err).results || [];
    }).then((/** @type {import('/sdk/transfer.js').ReceiveResult[]} */ results) => {
      for (const [i, e] of entries) {
        const res = results[i - 1];
        if (e.li.dataset.state === 'receiving') e.end('failed', `failed${res && res.error ? ': ' + res.error.code : ''}`);
      }
      receiveFrom(r);
    });
  }

  /**
   * Sends files to every other peer in the room (not to `switchboard send`, which only sends).
   * @param {File[]} files
   */
  function sendFilesToAll(files) {
    if (!view.client || view.left || !files.length) return;
    const targets = [...remotes.values()].filter((r) => !(r.peer.meta && r.peer.meta.role === 'send'));
    if (!targets.length) {
      notice('Nobody else is in the room to send files to.', 'info');
      return;
    }
    const me = view.me;
    const entries = files.map((f) => {
      const e = addFile(view.client ? view.client.id : '', me, f.name, f.size, 'sending');
      e.progress(0, 'waiting');
      return { e, size: f.size, bytes: new Map(), ok: 0, failed: /** @type {string[]} */ ([]) };
    });
    const settle = () => {
      for (const x of entries) {
        if (x.ok + x.failed.length < targets.length) continue;
        if (x.failed.length === 0) x.e.end('done', `sent to ${x.ok}`);
        else x.e.end('failed', `sent to ${x.ok} of ${targets.length}; failed: ${[...new Set(x.failed)].join(', ')}`);
      }
    };
    for (const r of targets) {
      const to = r.peer.id;
      r.sending = r.sending.then(() => sendFiles(r.peer, files, {
        onProgress(p) {
          const x = entries[p.file - 1];
          if (!x || x.e.li.dataset.state !== 'sending') return;
          x.bytes.set(to, p.bytes);
          let sum = 0;
          for (const b of x.bytes.values()) sum += b;
          const total = x.size * targets.length;
          x.e.progress(total ? sum / total : 1, `sending ${Math.floor(total ? (sum * 100) / total : 100)}%`);
        },
      })).then((results) => {
        results.forEach((res, i) => {
          if (res.error) entries[i].failed.push(res.error.code);
          else entries[i].ok++;
        });
      }, (err) => {
        console.warn('switchboard: sending files:', err instanceof Error ? err.message : err);
        for (const x of entries) if (x.ok + x.failed.length < targets.length) x.failed.push(err && err.code ? err.code : 'error');
      }).then(settle);
    }
  }

  /** Sends the files picked with #file-pick or dropped on the page. */
  function acceptFiles() {
    const fileInput = /** @type {HTMLInputElement} */ ($('file-input'));
    $('file-pick').addEventListener('click', () => fileInput.click());
    fileInput.addEventListener('change', () => {
      const files = Array.from(fileInput.files || []);
      fileInput.value = '';
      sendFilesToAll(files);
    });
    /** @param {DragEvent} ev */
    const hasFiles = (ev) => !!ev.dataTransfer && Array.from(ev.dataTransfer.types).includes('Files');
    let dragDepth = 0;
    document.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev) || view.left) return;
      ev.preventDefault();
      dragDepth++;
      document.body.classList.add('dragging');
    });
    document.addEventListener('dragover', (ev) => {
      if (!hasFiles(ev) || view.left) return;
      ev.preventDefault();
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy';
    });
    document.addEventListener('dragleave', () => {
      if (dragDepth > 0 && --dragDepth === 0) document.body.classList.remove('dragging');
    });
    document.addEventListener('drop', (ev) => {
      dragDepth = 0;
      document.body.classList.remove('dragging');
      if (!hasFiles(ev) || view.left) return;
      ev.preventDefault();
      sendFilesToAll(Array.from(ev.dataTransfer ? ev.dataTransfer.files : []));
    });
  }

  return { receiveFrom, sendFilesToAll, acceptFiles };
}
