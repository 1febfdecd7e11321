// Drives the official socket.io-client against a Switchboard server for the Go tests in
// internal/sioserver (node_test.go). Usage: node sio.mjs SCENARIO BASE_URL
// Prints one JSON object per line on stdout; exits 0 when the scenario passed, 1 with the
// reason on stderr otherwise. The Go side may write lines to stdin (the reconnect scenario).
import { io } from "socket.io-client";
import readline from "node:readline";

const [scenario, base] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const fail = (msg) => {
  process.stderr.write(`FAIL ${scenario}: ${msg}\n`);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 20000).unref();

const connect = (opts = {}) =>
  new Promise((resolve, reject) => {
    const s = io(base, { reconnection: false, ...opts });
    s.io.once("open", () => (s.firstTransport = s.io.engine.transport.name));
    s.once("connect", () => resolve(s));
    s.once("connect_error", (e) => reject(new Error(`connect_error: ${e.message}`)));
  });
const once = (s, ev) => new Promise((resolve) => s.once(ev, (...a) => resolve(a)));
const withAck = (s, ev, data) => s.timeout(5000).emitWithAck(ev, data);
const eq = (a, b, what) => {
  if (JSON.stringify(a) !== JSON.stringify(b)) fail(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
};

// The seed's flow between a and b: a offers to b by socket.id, b answers, both trickle
// candidates; every message must arrive once, in order, as emitted plus "from".
async function seedFlow(a, b, n) {
  const got = { a: [], b: [] };
  for (const ev of ["offer", "answer", "ice-candidate"]) {
    a.on(ev, (d) => got.a.push([ev, d]));
    b.on(ev, (d) => got.b.push([ev, d]));
  }
  const offer = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n" };
  b.once("offer", (data) => {
    b.emit("answer", { target: data.from, answer: { type: "answer", sdp: "v=0\r\nanswer\r\n" } });
    for (let i = 0; i < n; i++) b.emit("ice-candidate", { target: data.from, candidate: { candidate: `b${i}`, sdpMid: "0" } });
  });
  a.emit("offer", { target: b.id, offer });
  for (let i = 0; i < n; i++) a.emit("ice-candidate", { target: b.id, candidate: { candidate: `a${i}`, sdpMid: "0" } });
  const deadline = Date.now() + 10000;
  while (got.a.length < n + 1 || got.b.length < n + 1) {
    if (Date.now() > deadline) fail(`messages missing: a got ${got.a.length}, b got ${got.b.length}, want ${n + 1} each`);
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 100)); // a duplicate would show up by now
  eq(got.b.length, n + 1, "messages to b");
  eq(got.a.length, n + 1, "messages to a");
  eq(got.b[0], ["offer", { target: b.id, offer, from: a.id }], "offer as received");
  eq(got.a[0][0], "answer", "first event to a");
  eq(got.a[0][1].from, b.id, "answer's from");
  for (let i = 0; i < n; i++) {
    eq(got.b[i + 1], ["ice-candidate", { target: b.id, candidate: { candidate: `a${i}`, sdpMid: "0" }, from: a.id }], `candidate ${i} to b`);
    eq(got.a[i + 1], ["ice-candidate", { target: a.id, candidate: { candidate: `b${i}`, sdpMid: "0" }, from: b.id }], `candidate ${i} to a`);
  }
}

const upgraded = (s) =>
  s.io.engine.transport.name === "websocket" ? Promise.resolve() : once(s.io.engine, "upgrade");

try {
  switch (scenario) {
    case "upgrade": {
      // Default transports: polling first, then the upgrade to WebSocket.
      const s = await connect();
      const first = s.firstTransport;
      await upgraded(s);
      const a = await withAck(s, "join", { room: "up", name: "n" });
      eq(a.peer, s.id, "join ack's own id");
      out({ first, now: s.io.engine.transport.name, id: s.id });
      s.close();
      break;
    }
    case "websocket": {
      const s = await connect({ transports: ["websocket"] });
      const a = await withAck(s, "join", { room: "ws" });
      eq(a.peer, s.id, "join ack's own id");
      out({ transport: s.io.engine.transport.name, id: s.id });
      s.close();
      break;
    }
    case "seed": {
      // Two clients with different transports run the seed's flow, in no room (the seed's
      // server has none) and again after both joined a room.
      const a = await connect();
      const b = await connect({ transports: ["websocket"] });
      const p = await connect({ transports: ["polling"] });
      await upgraded(a);
      await seedFlow(a, b, 20);
      a.removeAllListeners(); b.removeAllListeners();
      await seedFlow(p, b, 20);
      p.removeAllListeners(); b.removeAllListeners();
      await withAck(a, "join", { room: "seed" });
      await withAck(b, "join", { room: "seed" });
      await seedFlow(b, a, 20);
      out({ ok: true, polling: p.io.engine.transport.name });
      a.close(); b.close(); p.close();
      break;
    }
    case "acks": {
      const a = await connect();
      const b = await connect({ transports: ["websocket"] });
      // In the lobby.
      eq(await withAck(a, "offer", { target: b.id, sdp: "x" }), { type: "ack", id: 0 }, "relay ack");
      const unk = await withAck(a, "offer", { target: "nobody", sdp: "x" });
      eq([unk.type, unk.code], ["error", "unknown-target"], "unknown target ack");
      const bad = await withAck(a, "offer", "not an object");
      eq(bad.code, "bad-field", "bad relay ack");
      const nope = await withAck(a, "no-such-event", {});
      eq(nope.code, "unknown-type", "unknown event ack");
      // Rooms: join answers with the peer list; the others hear peer-joined / peer-left.
      const wa = await withAck(a, "join", { room: "acks", name: "Ada", meta: { k: 1 } });
      eq([wa.type, wa.peer, wa.room, wa.peers], ["welcome", a.id, "acks", []], "a's welcome");
      const joined = once(a, "peer-joined");
      const wb = await withAck(b, "join", { room: "acks", name: "Bob" });
      eq(wb.peers, [{ id: a.id, name: "Ada", meta: { k: 1 } }], "b's welcome peers");
      const [pj] = await joined;
      eq(pj.peer, { id: b.id, name: "Bob" }, "peer-joined");
      eq((await withAck(a, "join", { room: "acks" })).code, "already-joined", "second join");
      eq(await withAck(a, "message", { target: b.id, text: "hi" }), { type: "ack", id: 6 }, "message ack");
      const left = once(a, "peer-left");
      eq(await withAck(b, "leave"), { type: "ack", id: 1 }, "leave ack");
      const [pl] = await left;
      eq([pl.peer.id, pl.reason], [b.id, "left"], "peer-left");
      // Errors without an ack come as an "error" event.
      const errEv = once(b, "error");
      b.emit("offer", { target: "nobody" });
      eq((await errEv)[0].code, "unknown-target", "error event");
      out({ ok: true });
      a.close(); b.close();
      break;
    }
    case "namespace": {
      const s = io(base + "other", { reconnection: false });
      const [e] = await once(s, "connect_error");
      out({ message: e.message });
      s.close();
      break;
    }
    case "reconnect": {
      // The Go side drops the connection of the id printed here; the client must reconnect
      // by itself and work again.
      const s = io(base, { reconnectionDelay: 50, reconnectionDelayMax: 200 });
      await once(s, "connect");
      await upgraded(s);
      const first = s.id;
      const lines = readline.createInterface({ input: process.stdin });
      const dropped = once(s, "disconnect");
      out({ id: first });
      const [reason] = await dropped;
      await once(s, "connect");
      const w = await withAck(s, "join", { room: "re" });
      eq(w.peer, s.id, "join after reconnect");
      out({ reason, id: s.id, first });
      lines.close();
      s.close();
      break;
    }
    default:
      fail("unknown scenario");
  }
  process.exit(0);
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
}
