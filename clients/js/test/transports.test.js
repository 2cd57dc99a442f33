// The real transports of pulse.js (pulse.v1 WebSocket, EventSource,
// long-poll) on fake browser objects and a fake clock: the frames and
// requests they send, the heartbeat, auth, and what they make of answers.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Pulse } from "../src/pulse.js";
import { Clock, FakeEventSource, FakeFetch, FakeWebSocket, settle } from "./fakes.js";

let clock;
let fetcher;
beforeEach(() => {
  clock = new Clock();
  fetcher = new FakeFetch();
  FakeWebSocket.made = [];
  FakeEventSource.made = [];
});

function client(opts = {}) {
  const p = new Pulse({
    env: {
      ...clock.env(),
      random: () => 0.5,
      window: null,
      document: null,
      location: { href: "https://dash.example/app/" },
      WebSocket: FakeWebSocket,
      EventSource: FakeEventSource,
      fetch: fetcher.fetch,
    },
    autoConnect: false,
    ...opts,
  });
  const got = [];
  p.on("message", (m) => got.push(m));
  return { p, got };
}
const lastWs = () => FakeWebSocket.made.at(-1);

test("pulse.v1: the socket URL, subprotocol, and one subscribe per channel with its resume id and pace", async () => {
  const { p, got } = client({ ws: "/live" });
  p.subscribe("bw", null, { interval: 30000, lastEventId: "100:2" });
  p.subscribe("faults", null, { throttle: 250 });
  p.subscribe("jobs", null, { mode: "manual" });
  p.connect();
  await settle();
  const ws = lastWs();
  assert.equal(ws.url, "wss://dash.example/live");
  assert.deepEqual(ws.protocols, ["pulse.v1"]);
  assert.deepEqual(ws.sent, []);
  ws.serverOpen();
  assert.deepEqual(ws.frames(), [
    { type: "subscribe", channel: "bw", last_event_id: "100:2", interval: "30s" },
    { type: "subscribe", channel: "faults", throttle: "250ms" },
    { type: "subscribe", channel: "jobs", mode: "manual" },
  ]);
  assert.equal(p.status, "live");
  ws.serverSend({ type: "message", channel: "bw", id: "101:0", data: "{\"v\":1}", event: "sample", content_type: "application/json" });
  ws.serverSend({ type: "message", channel: "bw", id: "101:1", data: "AAEC/w==", encoding: "base64", content_type: "application/octet-stream" });
  ws.serverSend("not json"); // ignored, the socket stays
  assert.equal(got[0].data, "{\"v\":1}");
  assert.equal(got[0].event, "sample");
  assert.equal(got[0].contentType, "application/json");
  assert.deepEqual([...got[1].data], [0, 1, 2, 255]);
  assert.equal(p.transportName, "websocket");
});

test("pulse.v1 heartbeat: a ping after 25 s of silence, any frame answers it, none in 10 s is a dead socket", async () => {
  const { p } = client();
  const disconnects = [];
  p.on("disconnect", (e) => disconnects.push(e.code));
  p.subscribe("a");
  p.connect();
  await settle();
  const ws = lastWs();
  ws.serverOpen();
  await clock.advance(24999);
  assert.equal(ws.frames("ping").length, 0);
  await clock.advance(1);
  assert.equal(ws.frames("ping").length, 1);
  ws.serverSend({ type: "pong" });
  await clock.advance(9999 + 15000); // alive; the next ping is due 25 s after the pong
  assert.equal(ws.frames("ping").length, 1);
  assert.equal(ws.closed, false);
  await clock.advance(10001);
  assert.equal(ws.frames("ping").length, 2);
  await clock.advance(10000); // no answer
  assert.equal(ws.closed, true);
  assert.deepEqual(disconnects, ["timeout"]);
  assert.equal(p.status, "reconnecting");
  await clock.advance(1000);
  assert.equal(FakeWebSocket.made.length, 2, "a new socket after the backoff");
});

test("pulse.v1 auth: the token is the first frame, subscribes follow its acceptance, a refusal fails the socket", async () => {
  const tokens = ["t1", "t2"];
  const { p } = client({ token: async () => tokens.shift() });
  const errors = [];
  p.on("disconnect", (e) => errors.push(e.code));
  p.subscribe("a");
  p.connect();
  await settle();
  const ws = lastWs();
  ws.serverOpen();
  const auth = ws.frames("auth")[0];
  assert.equal(auth.token, "t1");
  assert.deepEqual(ws.frames("subscribe"), [], "no subscribe before the token is accepted");
  ws.serverSend({ type: "authenticated", id: auth.id, expires: 0 });
  await settle();
  assert.deepEqual(ws.frames("subscribe"), [{ type: "subscribe", channel: "a" }]);
  assert.equal(p.status, "live");
  ws.serverClose(4401, "Token expired.");
  await settle();
  const ws2 = lastWs();
  assert.notEqual(ws2, ws, "4401: a new socket at once, with a new token");
  ws2.serverOpen();
  const auth2 = ws2.frames("auth")[0];
  assert.equal(auth2.token, "t2");
  ws2.serverSend({ type: "error", id: auth2.id, code: "unauthorized", message: "bad signature" });
  await settle();
  assert.equal(ws2.closed, true);
  assert.deepEqual(errors, ["closed", "unauthorized"]);
});

test("pulse.v1 gap and gone: a gap event, a gone event, the socket stays", async () => {
  const { p } = client();
  const seen = [];
  p.on("gap", (c) => seen.push("gap " + c));
  p.on("gone", (c) => seen.push("gone " + c));
  p.subscribe("a", null, { lastEventId: "1:0" });
  p.connect();
  await settle();
  const ws = lastWs();
  ws.serverOpen();
  ws.serverSend({ type: "subscribed", channel: "a", gap: true });
  ws.serverSend({ type: "gap", channel: "a" });
  ws.serverSend({ type: "gone", channel: "a", status: 410 });
  assert.deepEqual(seen, ["gap a", "gap a", "gone a"]);
  assert.equal(ws.closed, false);
});

test("EventSource: one per channel, the resume id and pace as query arguments, named events, an error hands over to the backoff", async () => {
  const { p, got } = client({ transports: ["eventsource"], sub: "/sub/{channel}", events: ["sample"] });
  p.subscribe("bw", null, { throttle: 1000, lastEventId: "5:1" });
  p.subscribe("a b", null, { events: ["fault"] });
  p.connect();
  await settle();
  const [es1, es2] = FakeEventSource.made;
  assert.equal(es1.url, "/sub/bw?throttle=1s&last_event_id=5%3A1");
  assert.equal(es2.url, "/sub/a%20b");
  es1.serverOpen();
  assert.equal(p.status, "live");
  es1.serverEvent("sample", "x", "6:0");
  es2.serverEvent("fault", "y", "7:0");
  es2.serverEvent("message", "z", "7:1");
  assert.deepEqual(
    got.map((m) => [m.channel, m.id, m.data, m.event]),
    [
      ["bw", "6:0", "x", "sample"],
      ["a b", "7:0", "y", "fault"],
      ["a b", "7:1", "z", undefined],
    ],
  );
  es1.serverError();
  assert.equal(es1.closed && es2.closed, true, "the browser's own reconnect is not used");
  await clock.advance(1000);
  const again = FakeEventSource.made.slice(2).map((e) => e.url);
  assert.deepEqual(again, ["/sub/bw?throttle=1s&last_event_id=6%3A0", "/sub/a%20b?last_event_id=7%3A1"]);
});

test("long-poll: the id from Last-Modified and Etag, sent back as If-Modified-Since and If-None-Match", async () => {
  const { p, got } = client({ transports: ["longpoll"] });
  p.subscribe("a");
  p.connect();
  await settle();
  const r1 = fetcher.last();
  assert.equal(r1.url, "/sub/a");
  assert.deepEqual(r1.headers, {});
  r1.answer(200, "hello", { "Last-Modified": "Thu, 01 Jan 2026 00:00:10 GMT", Etag: "3" });
  await settle();
  const t = Date.parse("Thu, 01 Jan 2026 00:00:10 GMT") / 1000;
  assert.deepEqual(
    got.map((m) => [m.id, m.data]),
    [[`${t}:3`, "hello"]],
  );
  assert.equal(p.status, "polling");
  const r2 = fetcher.last();
  assert.deepEqual(r2.headers, { "If-Modified-Since": "Thu, 01 Jan 2026 00:00:10 GMT", "If-None-Match": "3" });
  r2.answer(200, "\u0000bin", { "Last-Modified": "Thu, 01 Jan 2026 00:00:11 GMT", Etag: "0", "Content-Type": "application/octet-stream" });
  await settle();
  assert.ok(got[1].data instanceof Uint8Array);
  const r3 = fetcher.last();
  r3.answer(408); // the server's timeout: poll again at once
  await settle();
  assert.notEqual(fetcher.last(), r3);
  fetcher.last().answer(500);
  await settle();
  assert.equal(p.status, "reconnecting");
});

test("long-poll: a poll that waits is connected after pollOpenGrace", async () => {
  const { p } = client({ transports: ["longpoll"], pollOpenGrace: 2000 });
  p.subscribe("a");
  p.connect();
  await settle();
  assert.equal(p.status, "connecting");
  await clock.advance(2000);
  assert.equal(p.status, "polling");
});

test("long-poll: a poll unanswered for pollTimeout is abandoned and asked again, with no error", async () => {
  const { p } = client({ transports: ["longpoll"], pollTimeout: 60000 });
  const errors = [];
  p.on("disconnect", (e) => errors.push(e));
  p.subscribe("a");
  p.connect();
  await settle();
  await clock.advance(59999);
  assert.equal(fetcher.requests.length, 1);
  await clock.advance(1);
  assert.equal(fetcher.requests.length, 2, "a new poll at once");
  assert.equal(p.status, "polling");
  assert.deepEqual(errors, []);
  fetcher.last().answer(200, "x", { "Last-Modified": "Thu, 01 Jan 2026 00:00:10 GMT", Etag: "0" });
  await settle();
  assert.equal(fetcher.requests.length, 3);
});

test("EventSource: with sseTimeout, pings keep a stream alive and silence fails it", async () => {
  const { p } = client({ transports: ["eventsource"], sseTimeout: 30000 });
  const errors = [];
  p.on("disconnect", (e) => errors.push(e.code));
  p.subscribe("a");
  p.connect();
  await settle();
  const es = FakeEventSource.made[0];
  es.serverOpen();
  await clock.advance(20000);
  es.serverEvent("ping", "");
  await clock.advance(29999);
  assert.equal(es.closed, false);
  await clock.advance(1);
  assert.equal(es.closed, true);
  assert.deepEqual(errors, ["timeout"]);
  await clock.advance(1000);
  assert.equal(FakeEventSource.made.length, 2, "reconnected after the backoff");
});

test("EventSource and long-poll with no channel are open, and a channel subscribed later starts at once", async () => {
  for (const kind of ["eventsource", "longpoll"]) {
    const { p } = client({ transports: [kind] });
    p.connect();
    await settle();
    assert.equal(p.status, kind === "longpoll" ? "polling" : "live");
    const before = FakeEventSource.made.length + fetcher.requests.length;
    p.subscribe("late");
    await settle();
    assert.equal(FakeEventSource.made.length + fetcher.requests.length, before + 1, kind);
    p.close();
  }
});

test("pulse.v1 wildcards: no resume id, messages routed by their own channel, each channel's ids deduplicated apart", async () => {
  const { p, got } = client();
  const wild = [];
  const named = [];
  const sub = p.subscribe("metrics.*", (m) => wild.push(`${m.channel}=${m.data}`), { lastEventId: "9:0" });
  p.subscribe("metrics.cpu", (m) => named.push(m.data));
  p.connect();
  await settle();
  const ws = lastWs();
  ws.serverOpen();
  assert.deepEqual(ws.frames("subscribe"), [
    { type: "subscribe", channel: "metrics.*" }, // never a last_event_id
    { type: "subscribe", channel: "metrics.cpu" },
  ]);
  ws.serverSend({ type: "subscribed", channel: "metrics.*", channels: 1 });
  ws.serverSend({ type: "message", channel: "metrics.cpu", id: "10:0", data: "c1" });
  ws.serverSend({ type: "message", channel: "metrics.cpu", id: "10:0", data: "c1" }); // once per subscription
  ws.serverSend({ type: "message", channel: "metrics.mem", id: "5:0", data: "m1" }); // older id, another channel
  ws.serverSend({ type: "message", channel: "metrics.mem", id: "5:0", data: "m1" });
  ws.serverSend({ type: "message", channel: "metrics.cpu.0", id: "11:0", data: "deeper" });
  assert.deepEqual(wild, ["metrics.cpu=c1", "metrics.mem=m1"]);
  assert.deepEqual(named, ["c1"]);
  assert.equal(got.length, 3, "the client's message event: once per subscription");
  assert.equal(sub.lastEventId, null);
  // a reconnect subscribes the wildcard again, still without an id
  ws.serverClose(1006);
  await clock.advance(1000); // the first backoff: 500 ms at random 0.5
  await settle();
  const ws2 = lastWs();
  assert.notEqual(ws2, ws);
  ws2.serverOpen();
  assert.deepEqual(ws2.frames("subscribe"), [
    { type: "subscribe", channel: "metrics.*" },
    { type: "subscribe", channel: "metrics.cpu", last_event_id: "10:0" },
  ]);
  sub.unsubscribe();
  assert.deepEqual(ws2.frames("unsubscribe"), [{ type: "unsubscribe", channel: "metrics.*" }]);
  ws2.serverSend({ type: "message", channel: "metrics.mem", id: "6:0", data: "m2" });
  assert.deepEqual(wild, ["metrics.cpu=c1", "metrics.mem=m1"]);
});

test("wildcards on EventSource: an unsupported error, no stream, and the transport still opens", async () => {
  const { p } = client({ transports: ["eventsource"] });
  const errors = [];
  p.on("error", (e) => errors.push([e.code, e.channel]));
  p.subscribe("metrics.**");
  p.connect();
  await settle();
  assert.equal(FakeEventSource.made.length, 0);
  assert.deepEqual(errors, [["unsupported", "metrics.**"]]);
  assert.equal(p.status, "live");
});

test("matchPattern follows the server's segments", async () => {
  const { matchPattern, isPattern } = await import("../src/pulse.js");
  assert.ok(isPattern("a.*") && isPattern("**") && !isPattern("a*") && !isPattern("a.b"));
  assert.ok(matchPattern("metrics.*", "metrics.cpu"));
  assert.ok(!matchPattern("metrics.*", "metrics"));
  assert.ok(!matchPattern("metrics.*", "metrics."));
  assert.ok(!matchPattern("metrics.*", "metrics.cpu.0"));
  assert.ok(matchPattern("metrics.**", "metrics.cpu.0"));
  assert.ok(!matchPattern("metrics.**", "metrics"));
  assert.ok(!matchPattern("metrics.**", "metrics.a..b"));
  assert.ok(matchPattern("*.load", "cpu.load"));
  assert.ok(matchPattern("**", "x"));
  assert.ok(!matchPattern("a.**.b", "a.x.b"), "** only last");
});
