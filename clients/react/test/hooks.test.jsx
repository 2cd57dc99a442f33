// Tests of the React bindings in a real browser (React 19, react-dom),
// on fake transports (clients/js/test/fakes.js). Run by
// t/integration/test_react.py; each test's result lands in window.RESULTS.
import { act, useState } from "react";
import { createRoot } from "react-dom/client";
import { Pulse } from "@pulse-push/client";
import { PulseProvider, StatusPill, useChannel, useLatest, usePulse, usePulseStatus } from "@pulse-push/react";
import { Fakes, settle } from "../../js/test/fakes.js";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
function eq(a, b, what = "") {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what} expected ${y}, got ${x}`);
}
const frames = (n = 2) => act(() => new Promise((ok) => { let i = 0; const f = () => (++i >= n ? ok() : requestAnimationFrame(f)); requestAnimationFrame(f); }));

function setup(opts = {}) {
  const fakes = new Fakes();
  const client = new Pulse({ factories: fakes.factories(), env: { window: null, document: null }, ...opts });
  const el = document.createElement("div");
  document.body.append(el);
  const root = createRoot(el);
  const mount = (node) => act(() => root.render(<PulseProvider client={client}>{node}</PulseProvider>));
  const up = async () => {
    await act(async () => {
      await settle();
      fakes.last().up();
    });
  };
  const unmount = () => act(() => root.unmount());
  return { fakes, client, el, mount, up, unmount, ws: () => fakes.last() };
}

function Messages({ channel = "a", opts }) {
  const { messages, count, status } = useChannel(channel, opts);
  return <p data-count={count} data-status={status}>{messages.map((m) => m.data.v).join(",")}</p>;
}

test("useChannel: the latest messages in order, parsed as JSON, at most limit, and the status", async () => {
  const t = setup();
  await t.mount(<Messages opts={{ limit: 3 }} />);
  await t.up();
  await act(async () => {
    for (let i = 1; i <= 5; i++) t.ws().msg("a", `1:${i}`, JSON.stringify({ v: i }));
  });
  await frames();
  const p = t.el.querySelector("p");
  eq(p.textContent, "3,4,5");
  eq(p.dataset.count, "5");
  eq(p.dataset.status, "live");
  await t.unmount();
});

test("messages in many tasks render once per animation frame", async () => {
  const t = setup();
  let renders = 0;
  function Counted() {
    const { count } = useChannel("a");
    renders++;
    return <i>{count}</i>;
  }
  await t.mount(<Counted />);
  await t.up();
  await frames();
  // outside act(): React schedules as it would in the page
  globalThis.IS_REACT_ACT_ENVIRONMENT = false;
  try {
    const before = renders;
    let framesSeen = 0;
    let counting = true;
    const tick = () => {
      framesSeen++;
      if (counting) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    // 60 messages, each in its own task, as WebSocket frames arrive
    await new Promise((ok) => {
      let i = 0;
      const ch = new MessageChannel();
      ch.port1.onmessage = () => {
        t.ws().msg("a", `2:${++i}`, "{}");
        if (i < 60) ch.port2.postMessage(0);
        else ok();
      };
      ch.port2.postMessage(0);
    });
    await new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
    await new Promise((ok) => setTimeout(ok, 50));
    counting = false;
    eq(t.el.textContent, "60");
    const n = renders - before;
    if (n > framesSeen + 1 || n >= 60) throw new Error(`${n} renders in ${framesSeen} frames for 60 messages`);
  } finally {
    globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  }
  await t.unmount();
});

test("useLatest: the latest data per key, remove drops a key, limit keeps the most recently updated", async () => {
  const t = setup();
  function Table() {
    const { values } = useLatest("s", "id", { remove: (d) => d.kind === "stop", limit: 3 });
    return <p>{Object.values(values).map((d) => `${d.id}=${d.n}`).join(" ")}</p>;
  }
  await t.mount(<Table />);
  await t.up();
  const send = (id, n, kind = "update") => t.ws().msg("s", `3:${t.seq = (t.seq || 0) + 1}`, JSON.stringify({ id, n, kind }));
  await act(async () => {
    send("x", 1);
    send("y", 1);
    send("x", 2);
  });
  await frames();
  eq(t.el.textContent, "y=1 x=2");
  await act(async () => {
    send("y", 0, "stop");
    send("z", 1);
    send("w", 1);
    send("v", 1);
  });
  await frames();
  eq(t.el.textContent, "z=1 w=1 v=1", "x, the least recently updated, is out");
  await t.unmount();
});

test("changing mode re-paces the channel without resubscribing", async () => {
  const t = setup();
  function Widget() {
    const [mode, setMode] = useState("live");
    const ch = useChannel("bw", mode === "interval" ? { interval: 30000 } : { mode });
    window.__setMode = setMode;
    return <p data-mode={ch.mode}>{ch.count}</p>;
  }
  await t.mount(<Widget />);
  await t.up();
  await act(async () => window.__setMode("interval"));
  await act(async () => window.__setMode("manual"));
  await act(async () => window.__setMode("live"));
  eq(t.el.querySelector("p").dataset.mode, "live");
  eq(t.ws().subs, [
    { repace: "bw", pace: { interval: "30s" } },
    { repace: "bw", pace: { mode: "manual" } },
    { repace: "bw", pace: {} },
  ]);
  await t.unmount();
});

test("unmounting the last user of a channel unsubscribes it", async () => {
  const t = setup();
  function Two() {
    const [n, setN] = useState(2);
    window.__setN = setN;
    return <>{n > 0 && <Messages channel="a" />}{n > 1 && <Messages channel="a" />}</>;
  }
  await t.mount(<Two />);
  await t.up();
  await act(async () => window.__setN(1));
  eq(t.ws().subs.filter((s) => s.unsubscribe), [], "one user is left");
  await act(async () => window.__setN(0));
  eq(t.ws().subs.filter((s) => s.unsubscribe), [{ unsubscribe: "a" }]);
  eq(t.client.channels.has("a"), false);
  await t.unmount();
});

test("StatusPill and usePulseStatus follow the connection", async () => {
  const t = setup();
  function Last() {
    const { lastUpdate, transport } = usePulseStatus();
    return <b data-transport={transport || ""}>{lastUpdate ? "updated" : "never"}</b>;
  }
  await t.mount(<><StatusPill /><Messages /><Last /></>);
  const pill = () => t.el.querySelector(".pulse-pill");
  eq(pill().textContent, "Connecting");
  await t.up();
  eq([pill().textContent, pill().dataset.status, pill().dataset.transport], ["Live", "live", "websocket"]);
  eq(t.el.querySelector("b").textContent, "never");
  await act(async () => t.ws().msg("a", "4:0", "{}"));
  await frames();
  eq(t.el.querySelector("b").textContent, "updated");
  await act(async () => t.ws().fail());
  eq(pill().textContent, "Reconnecting");
  eq(pill().className, "pulse-pill pulse-reconnecting");
  await t.unmount();
});

test("PulseProvider closes the client it made when it unmounts", async () => {
  const fakes = new Fakes();
  let made = null;
  function Grab() {
    made = usePulse();
    return null;
  }
  const el = document.createElement("div");
  const root = createRoot(el);
  await act(() => root.render(<PulseProvider options={{ factories: fakes.factories(), env: { window: null, document: null } }}><Grab /><Messages /></PulseProvider>));
  await act(async () => {
    await settle();
    fakes.last().up();
  });
  eq(made.status, "live");
  await act(() => root.unmount());
  eq(made.status, "offline");
  eq(fakes.last().closedByClient, true);
});

test("a hook outside a PulseProvider fails with a clear error", async () => {
  const el = document.createElement("div");
  const root = createRoot(el);
  let caught = null;
  function Bad() {
    try {
      usePulse();
    } catch (e) {
      caught = e.message;
    }
    return null;
  }
  await act(() => root.render(<Bad />));
  eq(caught, "usePulse: no <PulseProvider> above this component");
  await act(() => root.unmount());
});

(async () => {
  const results = [];
  for (const { name, fn } of tests) {
    try {
      await fn();
      results.push({ name, ok: true });
    } catch (e) {
      results.push({ name, ok: false, error: String((e && e.stack) || e) });
    }
  }
  window.RESULTS = results;
})();
