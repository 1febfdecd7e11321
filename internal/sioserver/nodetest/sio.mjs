// Drives the official socket.io-client against a Switchboard server for the Go tests in
// internal/sioserver (node_test.go, auth_node_test.go). Usage: node sio.mjs SCENARIO BASE_URL [SPEC]
// (SPEC: a JSON argument of the auth scenarios). Prints one JSON object per line on stdout;
// exits 0 when the scenario passed, 1 with the reason on stderr otherwise. The Go side may
// write lines to stdin (the reconnect scenario).
import { io } from "socket.io-client";
import readline from "node:readline";

const [scenario, base, specArg] = process.argv.slice(2);
const spec = specArg ? JSON.parse(specArg) : {};
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// How long a refused or kicked client is watched for a reconnection it should not make: many
// times its reconnection delay (20-40 ms here).
const retryWindow = 400;

// authConnect connects with auth (reconnection on, fast, so a retry would show within
// retryWindow) and resolves with the outcome: connected with the welcome event that follows
// the CONNECT answer, or refused with the connect_error's message and data, and whether the
// client tried again.
async function authConnect(c) {
  const s = io(base, { forceNew: true, auth: c.auth, transports: c.transports, reconnectionDelay: 20, reconnectionDelayMax: 40 });
  let opens = 0, attempts = 0;
  s.io.on("open", () => opens++);
  s.io.on("reconnect_attempt", () => attempts++);
  const welcome = once(s, "welcome");
  const r = await new Promise((resolve) => {
    s.once("connect", () => resolve({ ok: true }));
    s.once("connect_error", (e) => resolve({ ok: false, message: e.message, data: e.data }));
  });
  r.name = c.name;
  if (r.ok) {
    [r.welcome] = await welcome;
    r.id = s.id;
    r.transport = s.io.engine.transport.name;
    s.close();
    return r;
  }
  await sleep(retryWindow);
  Object.assign(r, { opens, attempts, active: s.active });
  s.close();
  return r;
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
    case "join-rate": {
      // The hub lets this address make a few joins at once, then a few a second: past them a
      // join's ack is the rate-limited error, the socket stays connected, and it joins once
      // it has waited (a client's backoff of 100 ms).
      const s = await connect();
      let refused = null;
      for (let i = 0; i < 20 && !refused; i++) {
        const a = await withAck(s, "join", { room: "rate" });
        if (a.type === "error") refused = a;
        else eq((await withAck(s, "leave")).type, "ack", "leave ack");
      }
      if (!refused) fail("20 joins, none refused");
      eq(refused.code, "rate-limited", "refused join's code");
      eq(s.connected, true, "connected after the refusal");
      const deadline = Date.now() + 5000;
      let retries = 0;
      for (;;) {
        await new Promise((r) => setTimeout(r, 100));
        const w = await withAck(s, "join", { room: "rate" });
        if (w.type === "welcome") {
          eq(w.peer, s.id, "welcome after waiting");
          break;
        }
        eq(w.code, "rate-limited", "a retry's code");
        retries++;
        if (Date.now() > deadline) fail("still refused after 5 s");
      }
      out({ refused: 1 + retries });
      s.close();
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
    case "auth-matrix": {
      // spec.cases: [{name, auth, transports}], tried at once; one line each.
      for (const r of await Promise.all(spec.cases.map(authConnect))) out(r);
      break;
    }
    case "auth-takeover": {
      // spec: {first, second: {auth, transports}} for one identity: the first socket is
      // replaced; it hears the error event, then "io server disconnect", and does not
      // reconnect.
      const mk = (c) => io(base, { forceNew: true, auth: c.auth, transports: c.transports, reconnectionDelay: 20, reconnectionDelayMax: 40 });
      const a = mk(spec.first);
      let attempts = 0, opens = 0;
      a.io.on("reconnect_attempt", () => attempts++);
      await once(a, "connect");
      a.io.on("open", () => opens++);
      const firstID = a.id;
      const errEv = once(a, "error");
      const gone = once(a, "disconnect");
      const b = mk(spec.second);
      await once(b, "connect");
      const [e] = await errEv;
      const [reason] = await gone;
      await sleep(retryWindow);
      out({ first: firstID, second: b.id, code: e.code, message: e.message, reason, attempts, opens, active: a.active, secondConnected: b.connected });
      a.close(); b.close();
      break;
    }
    case "auth-seed": {
      // spec: {a, b, c}: auth for two sockets of one room and one of another. The seed's flow
      // (no join) runs between a and b; c cannot reach them.
      const a = await connect({ auth: spec.a });
      const b = await connect({ auth: spec.b, transports: ["websocket"] });
      const c = await connect({ auth: spec.c, transports: ["polling"] });
      await upgraded(a);
      await seedFlow(a, b, 20);
      let leaked = 0;
      for (const ev of ["offer", "answer", "ice-candidate", "message"]) {
        a.on(ev, () => leaked++);
        b.on(ev, () => leaked++);
      }
      const refused = await withAck(c, "offer", { target: a.id, sdp: "x" });
      eq([refused.type, refused.code], ["error", "unknown-target"], "other room's offer");
      const errEv = once(c, "error");
      c.emit("ice-candidate", { target: b.id, candidate: {} });
      eq((await errEv)[0].code, "unknown-target", "other room's candidate");
      // Nothing from c reached a or b before a's last message to b.
      const last = once(b, "message");
      eq(await withAck(a, "message", { target: b.id, text: "last" }), { type: "ack", id: 0 }, "a to b");
      eq((await last)[0].text, "last", "a's message to b");
      eq(leaked, 1, "messages to a and b (the last one only)");
      out({ a: a.id, b: b.id, c: c.id });
      a.close(); b.close(); c.close();
      break;
    }
    case "recover": {
      // spec: {via, transports, room, away, expect}. a connects through via (a TCP proxy the
      // Go side cuts when a prints its id), b directly; both in the lobby or in a room. b
      // sends a numbered messages: 5 before the cut, spec.away while a is away (sent when a
      // sees its disconnect), 5 after a is back. expect "recovered": a comes back with
      // socket.recovered, the same id, and every message once, in order. expect "new": the
      // socket was gone (a's reconnection comes after the grace): not recovered, a new id.
      const a = io(spec.via, { forceNew: true, transports: spec.transports, reconnectionDelay: spec.delay || 300, reconnectionDelayMax: spec.delay || 300, randomizationFactor: 0 });
      const trace = [];
      for (const ev of ["connect", "disconnect", "connect_error"]) a.on(ev, (x) => trace.push(`${ev} ${x && x.message ? x.message : x || ""} ${a.id} ${a.recovered}`));
      a.io.on("reconnect_attempt", (n) => trace.push(`attempt ${n}`));
      setTimeout(() => process.stderr.write(`trace: ${JSON.stringify(trace)}\n`), 19000).unref();
      await once(a, "connect");
      if (!spec.transports) await upgraded(a);
      const b = await connect({ forceNew: true, transports: ["websocket"] });
      if (spec.room) {
        await withAck(a, "join", { room: "rec" });
        await withAck(b, "join", { room: "rec" });
      }
      const got = [];
      let lastOffset = null;
      a.on("message", (d, ...rest) => {
        got.push(d.n);
        if (rest.length) lastOffset = rest[rest.length - 1];
      });
      let sent = 0;
      const send = async (k) => {
        for (let i = 0; i < k; i++) {
          const r = await withAck(b, "message", { target: first, n: sent++ });
          eq(r.type, "ack", "b's message ack");
        }
      };
      const first = a.id;
      const firstPID = a._pid;
      const until = async (cond, what) => {
        const deadline = Date.now() + 10000;
        while (!cond()) {
          if (Date.now() > deadline) fail(`timed out waiting for ${what}: got ${JSON.stringify(got)}`);
          await sleep(5);
        }
      };
      await send(5);
      await until(() => got.length === 5, "the first 5");
      const lines = readline.createInterface({ input: process.stdin });
      const away = new Promise((resolve) => a.once("disconnect", (reason) => resolve(reason)));
      out({ id: first, pid: firstPID, offset: lastOffset });
      const reason = await away;
      out({ away: reason });
      const awaySent = send(spec.away);
      const [, back] = await Promise.all([awaySent, once(a, "connect")]);
      if (spec.expect === "new") {
        out({ reason, recovered: a.recovered, id: a.id, first, got });
        lines.close(); a.close(); b.close();
        break;
      }
      await send(5);
      const total = 10 + spec.away;
      await until(() => got.length >= total, `${total} messages`);
      await sleep(100); // a duplicate would show up by now
      out({ reason, recovered: a.recovered, id: a.id, first, pid: a._pid, firstPID, got, transport: a.io.engine.transport.name });
      lines.close(); a.close(); b.close();
      break;
    }
    case "recover-across": {
      // spec: {a, b, transports, room, away}. a connects to node a, b to node b; both in the
      // lobby or in a room. b sends numbered messages to a: 5 before a's node drains for
      // restart (the Go side does it when a prints its id), spec.away while a is away, 5
      // after a is back — on node b, where its reconnection goes (as through a load balancer
      // once a's node is gone). a must come back recovered, same id and pid, every message
      // once and in order.
      const a = io(spec.a, { forceNew: true, transports: spec.transports, reconnectionDelay: 200, reconnectionDelayMax: 200, randomizationFactor: 0 });
      await once(a, "connect");
      if (!spec.transports) await upgraded(a);
      a.io.uri = spec.b; // its next connection goes to node b
      const b = await connect({ forceNew: true, transports: ["websocket"] });
      if (spec.room) {
        await withAck(a, "join", { room: "across" });
        await withAck(b, "join", { room: "across" });
      }
      const got = [];
      a.on("message", (d) => got.push(d.n));
      const first = a.id, firstPID = a._pid;
      let sent = 0;
      const send = async (k) => {
        for (let i = 0; i < k; i++) {
          for (const deadline = Date.now() + 5000; ;) {
            const r = await withAck(b, "message", { target: first, n: sent });
            if (r.type === "ack") break;
            // The lobby across nodes: node b learns of a's socket a moment after it connects.
            eq(r.code, "unknown-target", "b's message refused");
            if (sent > 0 || Date.now() > deadline) fail(`b's message ${sent} refused: ${JSON.stringify(r)}`);
            await sleep(20);
          }
          sent++;
        }
      };
      const until = async (cond, what) => {
        const deadline = Date.now() + 10000;
        while (!cond()) {
          if (Date.now() > deadline) fail(`timed out waiting for ${what}: got ${JSON.stringify(got)}; a ${a.id} (first ${first}) recovered ${a.recovered} on ${a.io.engine && a.io.engine.transport.name}`);
          await sleep(5);
        }
      };
      await send(5);
      await until(() => got.length === 5, "the first 5");
      const away = new Promise((resolve) => a.once("disconnect", (reason) => resolve(reason)));
      out({ id: first, pid: firstPID });
      const reason = await away;
      const back = once(a, "connect");
      await send(spec.away);
      await back;
      await send(5);
      const total = 10 + spec.away;
      await until(() => got.length >= total, `${total} messages`);
      await sleep(100); // a duplicate would show up by now
      out({ reason, recovered: a.recovered, id: a.id, first, pid: a._pid, firstPID, got, transport: a.io.engine.transport.name });
      a.close(); b.close();
      break;
    }
    case "pid-refused": {
      // spec: {a, b}: a socket on node a leaves (DISCONNECT); a client on node b presenting its
      // pid, or a forged one, gets a new socket.
      const a = await connect({ forceNew: true, transports: ["websocket"] });
      const { id, _pid: pid } = a;
      a.disconnect();
      const tampered = pid.slice(0, -2) + (pid.endsWith("AA") ? "BB" : "AA");
      const res = [];
      for (const p of [pid, tampered, "forged", pid.split(".").slice(0, 2).join(".") + "."]) {
        const c = io(spec.b, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { pid: p, offset: "0" } });
        await once(c, "connect");
        res.push({ id: c.id, recovered: c.recovered });
        c.close();
      }
      out({ id, res });
      break;
    }
    case "lobby-cluster": {
      // spec: {a, b, transports}: two sockets on two nodes of a cluster, in no room, run the
      // seed's flow by socket.id (polling and WebSocket).
      const mk = (url, transports) => new Promise((resolve, reject) => {
        const s = io(url, { forceNew: true, reconnection: false, transports });
        s.once("connect", () => resolve(s));
        s.once("connect_error", (e) => reject(new Error(`connect_error: ${e.message}`)));
      });
      const a = await mk(spec.a, spec.transports);
      const b = await mk(spec.b, ["websocket"]);
      const p = await mk(spec.b, ["polling"]);
      // A node learns another's lobby sockets a moment after they connect (the cluster's
      // lobby message): wait until each can reach the other, with messages the flow ignores.
      const reach = async (x, y) => {
        const deadline = Date.now() + 5000;
        for (;;) {
          const r = await withAck(x, "message", { target: y.id, probe: true });
          if (r.type === "ack") return;
          eq(r.code, "unknown-target", "a probe's refusal");
          if (Date.now() > deadline) fail(`${x.id} cannot reach ${y.id}`);
          await sleep(20);
        }
      };
      await Promise.all([reach(a, b), reach(b, a), reach(p, a), reach(a, p)]);
      await seedFlow(a, b, 20);
      a.removeAllListeners(); b.removeAllListeners();
      await seedFlow(p, a, 20);
      out({ a: a.id, b: b.id, p: p.id, transport: a.io.engine.transport.name });
      a.close(); b.close(); p.close();
      break;
    }
    default:
      fail("unknown scenario");
  }
  process.exit(0);
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
}
