// switchboard.js: Switchboard's browser peer SDK, a plain ES module (no bundler, no
// dependencies). It speaks the native signaling protocol on GET /ws (docs/protocol.md) and
// negotiates exactly like the Go SDK (sdk/), so browsers and Go peers connect to each other:
//
//   - One RTCPeerConnection per remote peer, ICE servers from the server's welcome.
//   - The side whose peer id is greater is polite and NEVER makes an offer. The impolite side
//     opens the reserved data channel "switchboard" to start the first negotiation and makes
//     every offer. When the polite side needs a renegotiation (it added a track, ...) it relays
//     a `message` {"switchboard":"negotiate","audio":N,"video":M}; the impolite side adds N
//     audio and M video recvonly transceivers and offers. Offers therefore never collide.
//   - Every negotiation step of a pair runs in order on that pair's queue; remote candidates
//     that arrive before the remote description wait and are added right after it.
//   - Trickle ICE both ways.
//   - The signaling socket reconnects by itself. A socket lost without a goodbye is resumed
//     with the latest resume token and the highest event seq received: same peer id, peer
//     connections untouched, missed events replayed (duplicates dropped by seq), unacked
//     relays re-sent with "retry" (never relayed twice), the room's peers reconciled with the
//     welcome's. A close 1012 (server restart) is retried at once. If the server cannot
//     resume, the client joins anew and rebuilds every peer connection under its new id.
//   - Access tokens (docs/auth.md): the `token` option goes in the join frame, never in a URL.
//     A function is called for the first join and again whenever a fresh join is needed after
//     a failed resume. A refused token and a presence the server ended (replaced, removed,
//     room-closed) are final: no reconnect, onError gets the ServerError, then onClose.
//
// This module is the one to import; it re-exports the SDK's parts from sibling modules:
// sdk-client.js (Client: the signaling socket, reconnection, the room's peers), sdk-peer.js
// (Peer: one RTCPeerConnection and its negotiation), sdk-outbox.js (relays until acked),
// sdk-connect.js (the join handshake, access tokens, the reconnect policy) and sdk-errors.js
// (ServerError).
//
// See docs/browser-sdk.md. Type-checkable with `tsc --checkJs --noEmit --lib es2022,dom`.

import { Client } from './sdk-client.js';
import { connect, freshToken } from './sdk-connect.js';
import { FINAL_ERRORS, ServerError } from './sdk-errors.js';
import { CONTROL_LABEL, Peer } from './sdk-peer.js';

export { CONTROL_LABEL, Client, FINAL_ERRORS, Peer, ServerError };

/**
 * @typedef {Object} PeerInfo
 * @property {string} id
 * @property {string} [identity] the user the peer's access token names (its sub)
 * @property {string} [name]
 * @property {Object<string, any>} [meta]
 */

/**
 * @typedef {Object} JoinOptions
 * @property {string|(() => string|Promise<string>)} [token] access token for a server with API
 *   keys (docs/auth.md), sent in the join frame; the server takes the room, name and meta from
 *   it. A function is called for the first join and again whenever the client must join anew
 *   after a resume failed (a resumed presence needs no token)
 * @property {string} [name] display name shown to the other peers (≤ 64 bytes)
 * @property {Object<string, any>} [meta] metadata object shown to the other peers
 * @property {(peer: Peer) => void} [onPeer] called for each remote peer as soon as its
 *   RTCPeerConnection exists and before any negotiation: set the peer's handlers here
 * @property {(peer: Peer, reason: string) => void} [onPeerLeft] a remote peer left
 *   (reason: left, closed, timeout, slow, kicked, shutdown)
 * @property {(peer: Peer|null, err: Error) => void} [onError] errors of one pair (bad SDP,
 *   ICE failure) or of the signaling connection (peer is null); the client goes on, except
 *   after a ServerError whose `final` is true (a refused token on a rejoin, replaced, removed,
 *   room-closed): onClose follows and client.error holds it
 * @property {(peer: Peer) => void} [onPeerUpdated] the server changed a remote peer's name or
 *   meta (server API); peer.name and peer.meta hold the new values
 * @property {(data: any) => void} [onServerMessage] a message from the application through the
 *   server API, to this peer or its room
 * @property {(ev: CloseEvent) => void} [onClose] the signaling socket closed (also after close())
 * @property {RTCIceServer[]} [iceServers] replace the ICE servers from the welcome
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] e.g. "relay" for TURN only
 * @property {number} [timeout] milliseconds to wait for the welcome (default 10000)
 * @property {false|ReconnectOptions} [reconnect] false: never reconnect the signaling socket
 * @property {(info: {attempt: number, code: number}) => void} [onReconnecting] the signaling
 *   socket was lost (close code `code`); attempt `attempt` (1, 2, ...) starts after a backoff.
 *   Peer connections stay up meanwhile
 * @property {(info: {resumed: boolean, id: string}) => void} [onReconnected] the client is
 *   back in its room. resumed: same id, nothing was lost; otherwise every remote peer was
 *   reported to onPeerLeft (reason "reconnect") and is being connected anew under the new id
 */

/**
 * @typedef {Object} ReconnectOptions
 * @property {number} [maxAttempts] attempts before giving up and calling onClose (default: no limit)
 * @property {number} [minDelayMs] first backoff (default 250), doubled per attempt
 * @property {number} [maxDelayMs] backoff cap (default 5000); each delay is jittered ±25%
 */

/** @typedef {import('./sdk-connect.js').Connection} Connection */
/** @typedef {import('./sdk-peer.js').NegotiateRequest} NegotiateRequest */

/**
 * Connects to a Switchboard server, joins room and starts connecting to every peer in it.
 * Resolves once the server has welcomed the client.
 *
 * @param {string} serverWsUrl the signaling endpoint, e.g. "wss://example.org/ws"
 * @param {string} room 1–64 characters of A-Z a-z 0-9 _ - . ('' when options.token names one)
 * @param {JoinOptions} [options]
 * @returns {Promise<Client>}
 */
export async function join(serverWsUrl, room, options = {}) {
  const token = await freshToken(options);
  const conn = await connect(serverWsUrl, room, options, '', token);
  const client = new Client(serverWsUrl, conn, options);
  client._token = token;
  client._start(conn.welcome.peers || [], conn.early);
  return client;
}
