// sdk-errors.js: the browser SDK's errors (part of switchboard.js, which re-exports them).

/**
 * Error codes after which the server closes the connection and a retry would be refused the
 * same way: a refused access token, or a presence the server ended.
 */
export const FINAL_ERRORS = new Set(['token-missing', 'token-invalid', 'token-expired', 'token-not-yet-valid',
  'room-not-granted', 'join-not-granted', 'replaced', 'removed', 'room-closed']);

/** An error frame from the signaling server. */
export class ServerError extends Error {
  /**
   * @param {string} code stable, machine-readable code (docs/protocol.md)
   * @param {string} message
   */
  constructor(code, message) {
    super(`switchboard: ${code}: ${message}`);
    this.name = 'ServerError';
    /** @type {string} */
    this.code = code;
    /** The client does not retry after it (see FINAL_ERRORS). @type {boolean} */
    this.final = FINAL_ERRORS.has(code);
  }
}
