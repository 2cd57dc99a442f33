// A fake clock and fake transports for the client's unit tests.

export class Clock {
  constructor() {
    this.t = 1_800_000_000_000;
    this.timers = new Map();
    this.next = 1;
  }
  env() {
    return {
      setTimeout: (fn, ms) => {
        const id = this.next++;
        this.timers.set(id, { at: this.t + (ms || 0), fn });
        return id;
      },
      clearTimeout: (id) => this.timers.delete(id),
      now: () => this.t,
    };
  }
  /** Runs every timer due within ms, in order, letting promises settle. */
  async advance(ms) {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let best = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (!best || tm.at < best[1].at)) best = [id, tm];
      if (!best) break;
      this.timers.delete(best[0]);
      this.t = Math.max(this.t, best[1].at);
      best[1].fn();
      await settle();
    }
    this.t = end;
  }
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
}

export async function settle() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Transports the test drives by hand: factories for Pulse's `factories`. */
export class Fakes {
  constructor() {
    this.made = [];
  }
  factories(kinds = ["websocket", "eventsource", "longpoll"]) {
    const f = {};
    for (const kind of kinds) f[kind] = (client, ctx) => this.make(kind, client, ctx);
    return f;
  }
  make(kind, client, ctx) {
    const fakes = this;
    const t = {
      kind,
      serverPaced: kind === "websocket",
      ctx,
      sent: [],
      subs: [],
      closedByClient: false,
      open(channels, token) {
        this.token = token;
        this.channels = channels;
        this.openedWith = [...channels.values()].map((c) => ({ name: c.name, lastId: c.lastId }));
      },
      subscribe(ch) {
        this.subs.push({ name: ch.name, lastId: ch.lastId, pace: ch.pace(kind === "websocket") });
      },
      unsubscribe(ch) {
        this.subs.push({ unsubscribe: ch.name });
      },
      repace(ch) {
        this.subs.push({ repace: ch.name, pace: ch.pace(kind === "websocket") });
      },
      send(f) {
        this.sent.push(f);
        return true;
      },
      authenticate(token) {
        this.sent.push({ type: "auth", token });
      },
      close() {
        this.closedByClient = true;
      },
      closed(err) {
        ctx.close(err);
      },
      // driven by the test
      up() {
        ctx.open();
      },
      fail(err = { code: "closed", message: "fake" }) {
        ctx.close(err);
      },
      msg(channel, id, data = id) {
        ctx.message(channel, { channel, id, data });
      },
    };
    if (kind === "websocket") t.fetchHeld = (ch) => client.request({ type: "fetch", channel: ch.name }, t);
    fakes.made.push(t);
    return t;
  }
  last(kind) {
    return [...this.made].reverse().find((t) => !kind || t.kind === kind);
  }
}

/** A browser WebSocket the test drives: the real WebSocketTransport runs
 *  on it. `FakeWebSocket.made` lists every socket, newest last. */
export class FakeWebSocket {
  static made = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closed = false;
    FakeWebSocket.made.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
    this.readyState = 3;
  }
  // driven by the test
  serverOpen() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }
  serverSend(frame) {
    this.onmessage && this.onmessage({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }
  serverClose(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
  frames(type) {
    return this.sent.filter((f) => !type || f.type === type);
  }
}

/** A browser EventSource the test drives. */
export class FakeEventSource {
  static made = [];
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.closed = false;
    FakeEventSource.made.push(this);
  }
  addEventListener(name, fn) {
    (this.listeners[name] = this.listeners[name] || []).push(fn);
  }
  close() {
    this.closed = true;
  }
  serverOpen() {
    this.onopen && this.onopen({});
  }
  serverEvent(type, data, lastEventId = "") {
    const e = { type, data, lastEventId };
    if (type === "message") this.onmessage && this.onmessage(e);
    for (const fn of this.listeners[type] || []) fn(e);
  }
  serverError() {
    this.onerror && this.onerror({});
  }
}

/** fetch for long-poll: each request waits until the test answers it. */
export class FakeFetch {
  constructor() {
    this.requests = [];
    this.fetch = (url, init) =>
      new Promise((resolve, reject) => {
        const req = { url, headers: init.headers, answer: null };
        req.answer = (status, body = "", headers = {}) => {
          const h = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
          resolve({
            status,
            headers: { get: (k) => (h.has(k.toLowerCase()) ? h.get(k.toLowerCase()) : null) },
            text: async () => body,
            arrayBuffer: async () => new TextEncoder().encode(body).buffer,
          });
        };
        req.fail = (e) => reject(e);
        if (init.signal) init.signal.addEventListener("abort", () => reject(new Error("aborted")));
        this.requests.push(req);
      });
  }
  last() {
    return this.requests[this.requests.length - 1];
  }
}
