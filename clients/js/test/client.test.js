// Unit tests of pulse.js against fake transports and a fake clock
// (node --test; no browser, no server).

import { test } from "node:test";
import assert from "node:assert/strict";
import { Pulse, backoffDelay, compareIds } from "../src/pulse.js";
import { Clock, Fakes, settle } from "./fakes.js";

function client({ env, ...opts } = {}) {
  const clock = new Clock();
  const fakes = new Fakes();
  const statuses = [];
  const p = new Pulse({
    env: { ...clock.env(), random: () => 0.5, window: null, document: null, ...env },
    factories: fakes.factories(),
    autoConnect: false,
    ...opts,
  });
  p.on("status", (s) => statuses.push(s));
  return { p, clock, fakes, statuses };
}

test("backoff: full jitter within [0, min(max, min * 2^n))", () => {
  const caps = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
  caps.forEach((cap, n) => {
    assert.equal(backoffDelay(n, 1000, 30000, () => 0), 0);
    assert.equal(backoffDelay(n, 1000, 30000, () => 0.999999), cap - 1);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(n, 1000, 30000);
      assert.ok(d >= 0 && d < cap, `attempt ${n}: ${d} outside [0, ${cap})`);
    }
  });
  assert.equal(backoffDelay(1000, 1000, 30000, () => 0.5), 15000); // no overflow
});

test("backoff: the client's delays double to the cap and reset once live", async () => {
  const { p, clock, fakes } = client({ env: { random: () => 0.999 } });
  const delays = [];
  p.on("retry", (d) => delays.push(d));
  p.subscribe("a", () => {});
  p.connect();
  for (let round = 0; round < 7; round++) {
    await settle();
    for (const kind of ["websocket", "eventsource", "longpoll"]) {
      assert.equal(fakes.last().kind, kind);
      fakes.last().fail();
      await settle(); // start() awaits the token provider
    }
    await clock.advance(delays[delays.length - 1]);
  }
  assert.deepEqual(delays, [999, 1998, 3996, 7992, 15984, 29970, 29970]);
  fakes.last().up();
  assert.equal(p.status, "live");
  fakes.last().fail(); // an open transport drops: the count starts again
  assert.equal(delays[delays.length - 1], 999);
});

test("maxAttempts: offline and a gave_up error after that many failed rounds", async () => {
  const { p, clock, fakes } = client({ maxAttempts: 2, transports: ["websocket"] });
  const errors = [];
  p.on("error", (e) => errors.push(e.code));
  p.subscribe("a");
  p.connect();
  await settle();
  fakes.last().fail();
  await clock.advance(60000);
  fakes.last().fail();
  await clock.advance(60000);
  fakes.last().fail();
  assert.equal(p.status, "offline");
  assert.deepEqual(errors, ["gave_up"]);
  assert.equal(fakes.made.length, 3);
  await clock.advance(600000);
  assert.equal(fakes.made.length, 3, "no attempt after giving up");
});

test("fallback at run time: WebSocket refused, EventSource refused, long-poll", async () => {
  const { p, fakes, statuses } = client();
  p.subscribe("a");
  p.connect();
  await settle();
  fakes.last("websocket").fail();
  await settle();
  fakes.last("eventsource").fail();
  await settle();
  fakes.last("longpoll").up();
  assert.equal(p.status, "polling");
  assert.equal(p.transportName, "longpoll");
  assert.deepEqual(statuses, ["connecting", "polling"]);
});

test("re-upgrade: a probe of the WebSocket after upgradeAfter, doubling when it fails", async () => {
  const { p, clock, fakes } = client({ upgradeAfter: 60000 });
  const got = [];
  p.subscribe("a", (m) => got.push(m.id));
  p.connect();
  await settle();
  fakes.last("websocket").fail();
  await settle();
  const es = fakes.last("eventsource");
  es.up();
  es.msg("a", "100:0");
  await clock.advance(59000);
  assert.equal(fakes.made.length, 2);
  await clock.advance(1000);
  const probe1 = fakes.last();
  assert.equal(probe1.kind, "websocket");
  assert.deepEqual(probe1.openedWith, [{ name: "a", lastId: "100:0" }]);
  probe1.fail(); // still blocked
  assert.equal(p.transportName, "eventsource");
  assert.equal(es.closedByClient, false);
  await clock.advance(119000);
  assert.equal(fakes.made.length, 3, "the next probe waits twice as long");
  await clock.advance(1000);
  const probe2 = fakes.last();
  es.msg("a", "100:1");
  probe2.up(); // the WebSocket works again: move over
  assert.equal(p.transportName, "websocket");
  assert.equal(es.closedByClient, true);
  es.msg("a", "100:9"); // a late message of the old transport is not delivered
  probe2.msg("a", "100:1"); // the overlap of the catch-up is dropped
  probe2.msg("a", "100:2");
  assert.deepEqual(got, ["100:0", "100:1", "100:2"]);
  assert.equal(p.status, "live");
});

test("resume: every reconnect, on any transport, starts from each channel's last id", async () => {
  const { p, clock, fakes } = client();
  p.subscribe("a");
  p.subscribe("b");
  p.connect();
  await settle();
  const ws = fakes.last();
  assert.deepEqual(ws.openedWith, [
    { name: "a", lastId: null },
    { name: "b", lastId: null },
  ]);
  ws.up();
  ws.msg("a", "10:0");
  ws.msg("b", "11:3");
  ws.msg("a", "12:0");
  ws.fail();
  await clock.advance(1000); // the first retry waits under 1 s, within openTimeout
  const ws2 = fakes.last();
  assert.equal(ws2.kind, "websocket", "an open transport that dropped is tried again first");
  assert.deepEqual(ws2.openedWith, [
    { name: "a", lastId: "12:0" },
    { name: "b", lastId: "11:3" },
  ]);
  ws2.fail(); // now refused: fall back, still from the same ids
  await settle();
  const es = fakes.last();
  assert.equal(es.kind, "eventsource");
  assert.deepEqual(es.openedWith, ws2.openedWith);
  es.up();
  es.msg("b", "13:0");
  es.fail();
  await clock.advance(1000);
  assert.deepEqual(fakes.last().openedWith, [
    { name: "a", lastId: "12:0" },
    { name: "b", lastId: "13:0" },
  ]);
});

test("duplicates: a message at or before the last id is never delivered again", async () => {
  const { p, clock, fakes } = client();
  const got = [];
  const all = [];
  p.subscribe("a", (m) => got.push(m.id));
  p.on("message", (m) => all.push(m.id));
  p.connect();
  await settle();
  const ws = fakes.last();
  ws.up();
  for (const id of ["5:0", "5:1", "5:1", "6:0", "5:2", "6:0"]) ws.msg("a", id);
  ws.fail();
  await clock.advance(1000); // the first retry waits under 1 s, within openTimeout
  const ws2 = fakes.last();
  ws2.up();
  for (const id of ["5:1", "6:0", "6:1", "10:0"]) ws2.msg("a", id);
  assert.deepEqual(got, ["5:0", "5:1", "6:0", "6:1", "10:0"]);
  assert.deepEqual(all, got);
});

test("duplicates: ids that cannot be ordered are remembered", async () => {
  assert.ok(Number.isNaN(compareIds("1:0,[1]", "1:0")));
  assert.ok(compareIds("2:0", "10:0") < 0);
  assert.ok(compareIds("10:2", "10:11") < 0);
  assert.equal(compareIds("7:7", "7:7"), 0);
  const { p, fakes } = client();
  const got = [];
  p.subscribe("a", (m) => got.push(m.id));
  p.connect();
  await settle();
  const ws = fakes.last();
  ws.up();
  for (const id of ["1:0,[0]", "1:1,[1]", "1:0,[0]", "2:0,[0]"]) ws.msg("a", id);
  assert.deepEqual(got, ["1:0,[0]", "1:1,[1]", "2:0,[0]"]);
});

test("modes on pulse.v1: the server paces; setMode sends pace, refresh sends fetch", async () => {
  const { p, fakes } = client();
  const sub = p.subscribe("bw", null, { interval: 30000 });
  p.subscribe("faults", null, { throttle: 250 });
  p.connect();
  await settle();
  const ws = fakes.last();
  ws.up();
  assert.deepEqual(
    [...ws.channels.values()].map((c) => c.pace(true)),
    [{ interval: "30s" }, { throttle: "250ms" }],
  );
  sub.setMode("manual");
  sub.setMode("live");
  assert.deepEqual(ws.subs, [
    { repace: "bw", pace: { mode: "manual" } },
    { repace: "bw", pace: {} },
  ]);
  sub.setMode("manual");
  const done = sub.refresh();
  await settle();
  const f = ws.sent.find((x) => x.type === "fetch");
  assert.equal(f.channel, "bw");
  ws.ctx.frame({ type: "fetched", id: f.id, channel: "bw", messages: 0 });
  await done;
  assert.throws(() => p.setMode("nope", "live"), { code: "not_subscribed" });
});

test("modes without server fetch: manual holds in the client until refresh", async () => {
  const { p, fakes } = client({ transports: ["eventsource"] });
  const got = [];
  const sub = p.subscribe("a", (m) => got.push(m.id), { mode: "manual" });
  p.connect();
  await settle();
  const es = fakes.last();
  es.up();
  es.msg("a", "1:0");
  es.msg("a", "1:1");
  assert.deepEqual(got, []);
  assert.equal(sub.lastEventId, "1:1", "held messages count for the resume");
  await sub.refresh();
  assert.deepEqual(got, ["1:0", "1:1"]);
  es.msg("a", "1:2");
  sub.setMode("live"); // leaving manual delivers what is held
  assert.deepEqual(got, ["1:0", "1:1", "1:2"]);
  es.msg("a", "1:3");
  assert.deepEqual(got, ["1:0", "1:1", "1:2", "1:3"]);
  sub.setMode("interval", { interval: 2000 });
  assert.deepEqual(es.subs.at(-1), { repace: "a", pace: { interval: "2s" } });
});

test("status: connecting, live, reconnecting, live; paused and resumed", async () => {
  const { p, clock, fakes, statuses } = client();
  p.subscribe("a");
  p.connect();
  await settle();
  fakes.last().up();
  fakes.last().fail();
  await clock.advance(1000);
  fakes.last().up();
  p.pause();
  assert.equal(fakes.last().closedByClient, true);
  p.resume();
  await settle();
  fakes.last().up();
  p.close();
  assert.deepEqual(statuses, ["connecting", "live", "reconnecting", "live", "paused", "connecting", "live", "offline"]);
  const n = fakes.made.length;
  await clock.advance(600000);
  assert.equal(fakes.made.length, n, "nothing reconnects after close()");
});

test("a transport that does not open within openTimeout has failed", async () => {
  const { p, clock, fakes } = client({ openTimeout: 5000 });
  p.subscribe("a");
  p.connect();
  await settle();
  await clock.advance(5000);
  assert.equal(fakes.last().kind, "eventsource");
});

test("commands: promise replies, errors, disconnects, no socket", async () => {
  const { p, clock, fakes } = client({ commandTimeout: 1000 });
  await assert.rejects(p.send("jobs", { action: "cancel" }), { code: "unavailable" });
  p.subscribe("jobs");
  p.connect();
  await settle();
  const ws = fakes.last();
  ws.up();
  const ok = p.send("jobs", { action: "cancel", job: 7 });
  const bad = p.send("jobs", { action: "x" });
  const late = p.send("jobs", {});
  const lost = p.send("jobs", {});
  const [f1, f2, f3] = ws.sent;
  assert.deepEqual(f1, { type: "command", channel: "jobs", data: { action: "cancel", job: 7 }, id: f1.id });
  ws.ctx.frame({ type: "reply", id: f1.id, status: 200, data: "cancelled" });
  ws.ctx.frame({ type: "error", id: f2.id, code: "upstream_failed", message: "502" });
  assert.deepEqual(await ok, { status: 200, data: "cancelled" });
  await assert.rejects(bad, { code: "upstream_failed" });
  void f3;
  await clock.advance(1000);
  await assert.rejects(late, { code: "timeout" });
  await assert.rejects(lost, { code: "timeout" });
  const gone = p.send("jobs", {});
  ws.fail();
  await assert.rejects(gone, { code: "disconnected" });
});

test("commands: an eventsource or long-poll connection has no commands", async () => {
  const { p, fakes } = client({ transports: ["eventsource"] });
  p.subscribe("a");
  p.connect();
  await settle();
  fakes.last().up();
  await assert.rejects(p.send("a", 1), { code: "unavailable" });
});

function jwt(exp) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b({ alg: "HS256" })}.${b({ exp })}.sig`;
}

test("token: asked before every connect and refreshed before it expires", async () => {
  const { p, clock, fakes } = client({ refreshMargin: 30000 });
  let n = 0;
  p.opts.token = async () => jwt(Math.floor(clock.t / 1000) + 120 + n++ * 0);
  p.subscribe("a");
  p.connect();
  await settle();
  const ws = fakes.last();
  assert.equal(n, 1);
  assert.ok(ws.token.includes("."));
  ws.up();
  await clock.advance(89000);
  assert.equal(n, 1);
  await clock.advance(1000); // exp - 30 s
  assert.equal(n, 2);
  assert.deepEqual(ws.sent.map((f) => f.type), ["auth"]);
  ws.fail({ code: "closed", status: 4401 }); // expired anyway: reconnect at once, new token
  await settle();
  assert.equal(n, 3);
  assert.equal(fakes.last().kind, "websocket");
});

test("token: a failing provider is an error and a retry, not a crash", async () => {
  const { p, clock, fakes } = client();
  const errors = [];
  p.on("error", (e) => errors.push(e.code));
  let fail = true;
  p.opts.token = async () => {
    if (fail) throw new Error("login expired");
    return "t";
  };
  p.subscribe("a");
  p.connect();
  await settle();
  assert.deepEqual(errors, ["token"]);
  assert.equal(fakes.made.length, 0);
  fail = false;
  await clock.advance(1000);
  assert.equal(fakes.last().token, "t");
});

test("browser events: offline drops, online reconnects, visible skips the backoff", async () => {
  const handlers = {};
  const target = { addEventListener: (e, fn) => (handlers[e] = fn) };
  const doc = { ...target, visibilityState: "visible" };
  const { p, fakes } = client({ env: { window: target, document: doc } });
  p.subscribe("a");
  p.connect();
  await settle();
  fakes.last().up();
  handlers.offline();
  assert.equal(p.status, "offline");
  assert.equal(fakes.last().closedByClient, true);
  handlers.online();
  await settle();
  fakes.last().up();
  assert.equal(p.status, "live");
  const live = fakes.made.length;
  handlers.online(); // again, while live: nothing to do
  p.connect(); // and an explicit connect replaces, never adds, a transport
  await settle();
  assert.equal(fakes.made.length, live + 1);
  assert.equal(fakes.made[live - 1].closedByClient, true);
  fakes.last().up();
  fakes.last().fail(); // now in a backoff
  const n = fakes.made.length;
  doc.visibilityState = "hidden";
  handlers.visibilitychange();
  doc.visibilityState = "visible";
  handlers.visibilitychange();
  await settle();
  assert.equal(fakes.made.length, n + 1, "back to a visible page: reconnect now");
});

test("pauseWhenHidden: a hidden page closes the connection, a visible one resumes", async () => {
  const handlers = {};
  const doc = { addEventListener: (e, fn) => (handlers[e] = fn), visibilityState: "visible" };
  const { p, fakes } = client({ pauseWhenHidden: true, env: { document: doc } });
  p.subscribe("a");
  p.connect();
  await settle();
  fakes.last().up();
  fakes.last().msg("a", "3:0");
  doc.visibilityState = "hidden";
  handlers.visibilitychange();
  assert.equal(p.status, "paused");
  doc.visibilityState = "visible";
  handlers.visibilitychange();
  await settle();
  assert.deepEqual(fakes.last().openedWith, [{ name: "a", lastId: "3:0" }]);
});

test("gap: surfaced as an event of the current transport only", async () => {
  const { p, fakes } = client();
  const gaps = [];
  p.on("gap", (c) => gaps.push(c));
  p.subscribe("a");
  p.connect();
  await settle();
  const ws = fakes.last();
  ws.up();
  ws.ctx.gap("a");
  assert.deepEqual(gaps, ["a"]);
});

test("a listener that throws does not stop the others", async () => {
  const { p, fakes } = client();
  const got = [];
  const orig = globalThis.reportError;
  globalThis.reportError = () => {};
  try {
    p.subscribe("a", () => {
      throw new Error("widget bug");
    });
    p.subscribe("a", (m) => got.push(m.id));
    p.connect();
    await settle();
    fakes.last().up();
    fakes.last().msg("a", "1:0");
    assert.deepEqual(got, ["1:0"]);
  } finally {
    globalThis.reportError = orig;
  }
});

test("the module exports what pulse.d.ts declares", async () => {
  const m = await import("../src/pulse.js");
  assert.deepEqual(Object.keys(m).sort(), ["Pulse", "PulseError", "STATUSES", "backoffDelay", "compareIds", "default", "isPattern", "matchPattern"]);
  assert.equal(m.default, m.Pulse);
});
