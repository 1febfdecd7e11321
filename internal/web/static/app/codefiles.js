// codefiles.js: the web app's file page, /files (app.js routes it here): send files with a
// code (the page draws one and shows it, with the `switchboard recv` command that takes it),
// or type a code to receive, from another page or from `switchboard send`. The exchange and
// the checks are wormhole.js's (the CLI's, compiled to WebAssembly); the files go as
// transfer.js sends them. One transfer at a time; every failure is one line in #code-status.
//
// Stable hooks for tests: body[data-code] (idle, waiting, sending, receiving, done, failed),
// #code-pick, #code-file-input, #code-show (the code), #code-cmd, #code-form, #code-input,
// #code-status (data-kind: info or error), #code-files li.file (data-state: sending,
// receiving, done, failed) with a.file-link[download] for received files, #code-cancel.

import { sendWithCode, receiveWithCode, loadWormhole } from '/sdk/wormhole.js';
import { $, show } from '/app/page.js';
import { fileEntry, humanBytes } from '/app/files.js';

/** The server `switchboard` commands use when given no --server. */
const CLI_DEFAULT_SERVER = 'http://localhost:8080';

/** @param {string} text @param {'info'|'error'} [kind] */
function status(text, kind = 'info') {
  const el = $('code-status');
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

/**
 * An entry of #code-files: a file's name, size, progress and state.
 * @param {string} name @param {number} size @param {'sending'|'receiving'} state
 */
function addEntry(name, size, state) {
  const list = $('code-files');
  list.hidden = false;
  return fileEntry(list, name, size, state);
}

/** Shows the file page. */
export function filesPage() {
  show('files');
  document.title = 'Files with a code · Switchboard';
  const wsUrl = location.origin.replace(/^http/, 'ws') + '/ws';
  const input = /** @type {HTMLInputElement} */ ($('code-input'));
  const fileInput = /** @type {HTMLInputElement} */ ($('code-file-input'));
  /** @type {AbortController|null} */
  let running = null;

  /** @param {string} s */
  const setState = (s) => {
    document.body.dataset.code = s;
    const busy = s === 'waiting' || s === 'sending' || s === 'receiving';
    for (const id of ['code-pick', 'code-recv']) /** @type {HTMLButtonElement} */ ($(id)).disabled = busy;
    input.disabled = busy;
    $('code-cancel').hidden = !busy;
  };
  setState('idle');
  // Fetch and start the WebAssembly module now: the code is checked the moment it is typed.
  loadWormhole().catch((e) => status(`Cannot load the code checker: ${e instanceof Error ? e.message : e}`, 'error'));

  /**
   * Runs one transfer; its failure is shown in one line.
   * @param {(signal: AbortSignal) => Promise<string>} job resolves with the line to show
   */
  async function run(job) {
    if (running) return;
    const ctl = new AbortController();
    running = ctl;
    $('code-files').replaceChildren();
    $('code-files').hidden = true;
    try {
      status(await job(ctl.signal));
      setState('done');
    } catch (e) {
      status(e instanceof Error ? e.message : String(e), 'error');
      setState('failed');
      for (const li of $('code-files').querySelectorAll('li.file[data-state="sending"], li.file[data-state="receiving"]')) {
        /** @type {HTMLElement} */ (li).dataset.state = 'failed';
        li.querySelector('progress')?.remove();
      }
    } finally {
      running = null;
    }
  }

  /**
   * Progress of the files of a transfer, an entry each.
   * @param {'sending'|'receiving'} verb
   */
  function tracker(verb) {
    /** @type {Map<number, ReturnType<typeof addEntry>>} */
    const entries = new Map();
    return {
      entries,
      /** @param {import('/sdk/transfer.js').Progress} p */
      onProgress(p) {
        let e = entries.get(p.file);
        if (!e) {
          e = addEntry(p.name, p.size, verb);
          entries.set(p.file, e);
        }
        if (p.done) {
          if (verb === 'sending') e.end('done', 'sent');
          return;
        }
        if (document.body.dataset.code !== verb) setState(verb);
        const pct = p.size ? Math.floor((p.bytes * 100) / p.size) : 0;
        e.progress(p.size ? p.bytes / p.size : 0, `${verb} ${pct}%`);
      },
    };
  }

  $('code-pick').addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    const files = Array.from(fileInput.files || []);
    fileInput.value = '';
    if (!files.length) return;
    $('code-offer').hidden = true;
    run(async (signal) => {
      setState('waiting');
      status('Getting a code…');
      const t = tracker('sending');
      const results = await sendWithCode(wsUrl, files, {
        signal,
        onCode(code) {
          $('code-show').textContent = code;
          let cmd = `switchboard recv ${code}`;
          if (location.origin !== CLI_DEFAULT_SERVER) cmd += ` --server ${location.origin}`;
          $('code-cmd').textContent = cmd;
          $('code-offer').hidden = false;
          status(`Waiting for the receiver: give them the code (they type it at ${location.origin}/files).`);
        },
        onStatus: (line) => status(line),
        onProgress: t.onProgress,
      });
      $('code-offer').hidden = true;
      const failed = results.filter((r) => r.error);
      for (const [i, e] of t.entries) {
        const r = results[i - 1];
        if (r && r.error) e.end('failed', `refused: ${r.error.code}`);
      }
      if (failed.length) {
        throw new Error(`The receiver refused ${failed.length} of ${results.length} file(s): ${failed.map((r) => `${r.name} (${r.error ? r.error.code : ''})`).join(', ')}.`);
      }
      const total = results.reduce((n, r) => n + r.size, 0);
      return `Sent ${results.length} file(s), ${humanBytes(total)}; the receiver confirmed each.`;
    });
  });

  $('code-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const code = input.value.trim();
    if (!code) return;
    $('code-offer').hidden = true;
    run(async (signal) => {
      setState('waiting');
      status('Looking for the sender…');
      const t = tracker('receiving');
      const results = await receiveWithCode(wsUrl, code, {
        signal,
        onStatus: (line) => status(line),
        onProgress: t.onProgress,
        onFile(f) {
          const e = [...t.entries.values()].find((x) => x.li.dataset.state === 'receiving');
          if (e) {
            e.link(f.url);
            e.end('done', '');
          }
        },
      });
      let got = 0;
      for (const [i, e] of t.entries) {
        const r = results[i - 1];
        if (r && r.error && e.li.dataset.state === 'receiving') e.end('failed', `failed: ${r.error.code}`);
        if (r && r.file) got += r.size;
      }
      const ok = results.filter((r) => r.file).length;
      if (ok < results.length) throw new Error(`Received ${ok} of ${results.length} file(s); the others failed.`);
      return `Received ${ok} file(s), ${humanBytes(got)}: each checked (size and SHA-256). Save them with their links.`;
    });
  });

  $('code-cancel').addEventListener('click', () => { if (running) running.abort(); });
  window.addEventListener('pagehide', () => { if (running) running.abort(); });
}
