// Package sdk is Switchboard's Go peer SDK: it dials a `switchboard serve`, joins a room and
// connects to every other peer in it with Pion WebRTC, exactly as the seed guide describes —
// offer, local description, relay through the server, remote description, answer, and trickle
// ICE both ways — made robust:
//
//   - Negotiation that converges, and no more of it than needed. Each pair has a polite and an
//     impolite side, decided from the peer ids. The impolite side makes every offer, the first
//     as soon as the pair exists (with the tracks OnPeer added); when the polite side adds a
//     track the first offer gave no m-line, it asks the impolite side (through the server) to
//     renegotiate, and the offer then carries an m-line for it. Offers therefore never collide,
//     renegotiation from either side converges, and a pair whose sides both add their tracks
//     in OnPeer connects with one offer (docs/browser-sdk.md "Negotiation rules"). (Browser-style perfect negotiation resolves collisions by rolling back a local
//     offer, which Pion v4.2.26 cannot do; avoiding the collision gives the same guarantee.)
//   - Every negotiation step of a pair runs in order on that pair's own goroutine, like Pion's
//     operations queue; remote candidates that arrive before the remote description are queued,
//     not lost.
//   - ICE servers come from the server's welcome; TURN credentials in them are refreshed
//     (an ice-servers request) before they expire, so connections to peers that join later
//     can still allocate a relay. The SettingEngine is tuned for fast setup and every knob is
//     an Option.
//   - Bad input from one remote peer (malformed SDP, a stray answer, a candidate for an unknown
//     m-line) is reported through Options.OnError for that pair only.
//   - A lost signaling connection does not end the call: the client reconnects with backoff
//     (at once after a close 1012, a server restart) and resumes its presence: same id, peer
//     connections and data channels untouched, missed events replayed after the last seq it
//     received (duplicates dropped), relays the server had not acked sent again with "retry"
//     (never relayed twice), the room's peers reconciled with the resumed welcome's, and pairs
//     renegotiated when the welcome says events were lost (resume.go). When the server cannot
//     resume it, the client joins anew and rebuilds every pair (Options.Reconnect).
//   - Access tokens (docs/auth.md): Options.Token, or Options.TokenFunc to fetch a fresh one
//     from the application whenever the client must join anew. A refused token and a
//     presence the server ended (ErrReplaced, ErrRemoved, ErrRoomClosed) are final: the client
//     stops with a *ServerError carrying the protocol code and never retries them. Messages
//     from the application (server API) arrive through Options.OnServerMessage, metadata
//     changes through Options.OnPeerUpdated.
//   - Peer.QUIC: between two SDK peers, a QUIC connection (quic-go) beside the peer
//     connection, over an ICE session of its own (same ICE servers, policy and network), its
//     TLS 1.3 certificates pinned to fingerprints exchanged through the signaling server
//     (as trustworthy as the SDP's DTLS fingerprints, which come the same way); it sets up in
//     parallel with the peer connection, not after it: bulk data several times cheaper per
//     byte than an SCTP data channel.
//     Browsers have no such path; callers fall back to a data channel on ErrQUIC.
//
// A Client owns everything it starts: Close stops every goroutine, peer connection and socket.
package sdk
