// pulse.js: the browser client of Pulse (and of nchan's subscriber
// locations). One object keeps a set of channel subscriptions alive over
// the best transport that works now: a pulse.v1 WebSocket (every channel
// on one socket), then one EventSource per channel, then one long-poll per
// channel. It falls back when a transport fails to open, tries the better
// one again later, resumes every channel from its last id, and never hands
// the application a message twice. No runtime dependencies.

const TRANSPORTS = ["websocket", "eventsource", "longpoll"];

const DEFAULTS = {
  ws: "/ws", // the pulse.v1 WebSocket location
  sub: "/sub/{channel}", // the EventSource / long-poll location
  transports: TRANSPORTS,
  minDelay: 1000, // reconnect backoff: full jitter in [0, min(maxDelay, minDelay * 2^n)]
  maxDelay: 30000,
  maxAttempts: Infinity, // failed rounds in a row before the status is "offline" for good
  openTimeout: 10000, // a transport not open by then has failed
  pollOpenGrace: 2000, // a long-poll still waiting after this is connected
  heartbeat: 25000, // pulse.v1 ping interval; no answer within heartbeatTimeout: dead
  heartbeatTimeout: 10000,
  upgradeAfter: 60000, // on a fallback transport, probe the better one after this (doubling)
  commandTimeout: 15000,
  token: null, // async () => token; called before each connect and before expiry
  tokenParam: "token", // query argument that carries the token on EventSource and long-poll
  refreshMargin: 30000, // ask for a new token this long before exp
  pauseWhenHidden: false,
  autoConnect: true, // the first subscribe connects
  pollInterval: 1000, // an interval-poll location answers 304 at once: wait this long
  pollTimeout: 60000, // a poll unanswered this long is abandoned and asked again
  sseTimeout: 0, // EventSource: fail a stream silent this long (set it above the location's ping interval)
  pingEvent: "ping", // the EventSource event of the location's pings (pulse_eventsource_ping_event)
  env: null, // tests: {WebSocket, EventSource, fetch, setTimeout, clearTimeout, now, random, window, document}
};

export const STATUSES = ["connecting", "live", "reconnecting", "polling", "offline", "paused"];

/** The delay before reconnect attempt n (0-based): full jitter. */
export function backoffDelay(n, min, max, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(n, 30));
  return Math.floor(random() * cap);
}

const ID = /^(\d+):(\d+)$/;

/** Compares two message ids "<time>:<tag>": <0, 0, >0, or NaN when either
 *  is not such an id (multiplexed ids, custom ids). */
export function compareIds(a, b) {
  const x = ID.exec(a);
  const y = ID.exec(b);
  if (!x || !y) return NaN;
  return x[1] - y[1] || x[2] - y[2];
}

/** "250ms", "30s" from milliseconds, as the server's pace arguments. */
function duration(ms) {
  return ms % 1000 ? `${ms}ms` : `${ms / 1000}s`;
}

function jwtExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

function withArgs(url, args) {
  const q = Object.entries(args)
    .filter(([, v]) => v != null && v !== "")
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join("&");
  return q ? url + (url.includes("?") ? "&" : "?") + q : url;
}

function defaultEnv() {
  const g = globalThis;
  return {
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    fetch: g.fetch && g.fetch.bind(g),
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    now: () => Date.now(),
    random: Math.random,
    window: g.window,
    document: g.document,
    location: g.location,
  };
}

class Emitter {
  constructor() {
    this._on = new Map();
  }
  on(event, fn) {
    if (!this._on.has(event)) this._on.set(event, new Set());
    this._on.get(event).add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) {
    const s = this._on.get(event);
    if (s) s.delete(fn);
  }
  emit(event, ...args) {
    for (const fn of [...(this._on.get(event) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        // a listener's bug must not break delivery to the others
        (globalThis.reportError || console.error)(e);
      }
    }
  }
}

export class PulseError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = "PulseError";
    this.code = code;
    Object.assign(this, extra);
  }
}

/** A pulse.v1 wildcard: a segment that is exactly `*` or `**`. */
export function isPattern(name) {
  return name.split(".").some((s) => s === "*" || s === "**");
}

/** The server's rule (docs/auth.md): `*` one segment, `**` last, one or more. */
export function matchPattern(pattern, channel) {
  const p = pattern.split(".");
  const c = channel.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === "**") return i === p.length - 1 && c.length > i && c.slice(i).every(Boolean);
    if (i >= c.length || !c[i] || (p[i] !== "*" && p[i] !== c[i])) return false;
  }
  return p.length === c.length;
}

/** A channel's subscription: its listeners, its resume id, its mode. */
class Channel {
  constructor(client, name, opts) {
    this.client = client;
    this.name = name;
    this.pattern = isPattern(name); // pulse.v1 only; no resume
    this.lastId = this.pattern ? null : opts.lastEventId || null;
    this.lastIds = new Map(); // a pattern's: per channel it matched
    this.seen = []; // recent ids that compareIds cannot order
    this.listeners = new Set();
    this.events = new Set(opts.events || []); // EventSource event names besides "message"
    this.held = []; // manual mode on a transport without server-side fetch
    this.setPace(opts);
  }
  setPace({ mode = "live", interval, throttle } = {}) {
    this.mode = interval ? "interval" : mode;
    this.interval = interval || 0;
    this.throttle = this.mode === "live" ? throttle || 0 : 0;
  }
  /** The server's pace arguments (pulse.v1 fields and query arguments). */
  pace(manualOnServer) {
    if (this.mode === "interval") return { interval: duration(this.interval) };
    if (this.mode === "manual") return manualOnServer ? { mode: "manual" } : {};
    if (this.throttle) return { throttle: duration(this.throttle) };
    return {};
  }
  /** A message from any transport: dropped when seen, else delivered. */
  receive(msg, serverPaced) {
    if (msg.id) {
      const last = this.pattern ? this.lastIds.get(msg.channel) : this.lastId;
      let c = last ? compareIds(msg.id, last) : 1;
      if (!ID.test(msg.id)) c = NaN; // remembered, even as the first id
      if (c <= 0) return; // a duplicate (a resume or an upgrade overlap)
      if (Number.isNaN(c)) {
        if (this.seen.includes(msg.id)) return;
        this.seen.push(msg.id);
        if (this.seen.length > 256) this.seen.shift();
      }
      if (this.pattern) this.lastIds.set(msg.channel, msg.id);
      else this.lastId = msg.id;
    }
    if (this.mode === "manual" && !serverPaced) {
      this.held.push(msg);
      if (this.held.length > 10000) this.held.shift();
      return;
    }
    this.deliver([msg]);
  }
  deliver(msgs) {
    for (const m of msgs) {
      for (const fn of [...this.listeners]) {
        try {
          fn(m);
        } catch (e) {
          (globalThis.reportError || console.error)(e);
        }
      }
      this.client.emit("message", m);
    }
  }
}

// ---------------------------------------------------------------- transports
// A transport reports to its client through ctx: open(), message(channel,
// msg), gap(channel), frame(obj) (pulse.v1 replies), close(error).

/** What every transport shares: it reports its end once. */
class Transport {
  closed(err) {
    if (this.done) return;
    this.close();
    this.ctx.close(err);
  }
}

class WebSocketTransport extends Transport {
  constructor(client, ctx) {
    super();
    this.kind = "websocket";
    this.serverPaced = true;
    this.client = client;
    this.ctx = ctx;
    this.env = client.env;
    this.timers = [];
  }
  open(channels, token) {
    const o = this.client.opts;
    const loc = this.env.location;
    const url = new URL(o.ws, loc ? loc.href : undefined);
    url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
    const ws = new this.env.WebSocket(url.href, ["pulse.v1"]);
    this.ws = ws;
    ws.onopen = () => {
      this.alive();
      if (token) this.authenticate(token, true);
      else this.ready();
    };
    ws.onmessage = (e) => {
      this.alive();
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      this.frame(f);
    };
    ws.onerror = () => {};
    ws.onclose = (e) => this.closed(new PulseError("closed", `WebSocket closed ${e.code} ${e.reason}`, { status: e.code }));
    this.channels = channels;
  }
  ready() {
    for (const ch of this.channels.values()) this.subscribe(ch);
    this.ctx.open();
  }
  authenticate(token, first) {
    this.client.request({ type: "auth", token }, this).then(
      () => first && this.ready(),
      (err) => {
        // a server without JWT on this location has nothing to check
        if (first && err.code !== "unauthorized" && err.code !== "forbidden") this.ready();
        else if (first) this.closed(err);
      },
    );
  }
  alive() {
    const o = this.client.opts;
    this.clear();
    if (!o.heartbeat) return;
    this.timers.push(
      this.env.setTimeout(() => {
        this.send({ type: "ping" });
        this.timers.push(
          this.env.setTimeout(() => {
            this.closed(new PulseError("timeout", "No answer to the heartbeat."));
          }, o.heartbeatTimeout),
        );
      }, o.heartbeat),
    );
  }
  clear() {
    for (const t of this.timers) this.env.clearTimeout(t);
    this.timers = [];
  }
  frame(f) {
    const ch = f.channel;
    if (f.type === "message") {
      let data = f.data;
      if (f.encoding === "base64") data = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      this.ctx.message(ch, { channel: ch, id: f.id, data, event: f.event, contentType: f.content_type });
    } else if ((f.type === "subscribed" && f.gap) || f.type === "gap") {
      this.ctx.gap(ch);
    } else {
      this.ctx.frame(f);
    }
  }
  send(obj) {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }
  subscribe(ch) {
    this.send({ type: "subscribe", channel: ch.name, last_event_id: (!ch.pattern && ch.lastId) || undefined, ...ch.pace(true) });
  }
  unsubscribe(ch) {
    this.send({ type: "unsubscribe", channel: ch.name });
  }
  repace(ch) {
    const p = ch.pace(true);
    this.send({ type: "pace", channel: ch.name, ...(Object.keys(p).length ? p : { mode: "live" }) });
  }
  fetchHeld(ch) {
    return this.client.request({ type: "fetch", channel: ch.name }, this);
  }
  close() {
    this.done = true;
    this.clear();
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      try {
        this.ws.close();
      } catch {
        // already closed
      }
    }
  }
}

/** What EventSource and long-poll share: one stream per channel. */
class PerChannel extends Transport {
  constructor(client, ctx) {
    super();
    this.serverPaced = false;
    this.client = client;
    this.ctx = ctx;
    this.env = client.env;
    this.streams = new Map();
  }
  open(channels, token) {
    this.token = token;
    for (const ch of channels.values()) this.subscribe(ch);
    // nothing to stream yet is open: a channel subscribed later starts at
    // once instead of waiting out openTimeout and a backoff
    if (![...channels.values()].some((c) => !c.pattern)) this.opened();
  }
  /** A wildcard has no URL: it needs the pulse.v1 WebSocket. */
  unsupported(ch) {
    this.client.emit("error", new PulseError("unsupported", `${ch.name}: wildcards need the pulse.v1 WebSocket (now on ${this.kind}).`, { channel: ch.name }));
  }
  url(ch, extra) {
    const o = this.client.opts;
    const base = o.sub.replace("{channel}", encodeURIComponent(ch.name));
    const args = { ...ch.pace(false), ...extra };
    if (o.tokenParam && this.token) args[o.tokenParam] = this.token;
    return withArgs(base, args);
  }
  unsubscribe(ch) {
    const s = this.streams.get(ch.name);
    this.streams.delete(ch.name);
    if (s) s.stop();
  }
  repace(ch) {
    this.unsubscribe(ch);
    this.subscribe(ch);
  }
  opened() {
    if (!this.isOpen && !this.done) {
      this.isOpen = true;
      this.ctx.open();
    }
  }
  close() {
    this.done = true;
    for (const s of this.streams.values()) s.stop();
    this.streams.clear();
  }
}

class EventSourceTransport extends PerChannel {
  constructor(client, ctx) {
    super(client, ctx);
    this.kind = "eventsource";
  }
  subscribe(ch) {
    if (ch.pattern) return this.unsupported(ch);
    const o = this.client.opts;
    const es = new this.env.EventSource(this.url(ch, { last_event_id: ch.lastId }));
    // Dead-stream detection, for a location that pings
    // (pulse_eventsource_ping_interval): silence past sseTimeout fails it.
    let timer = null;
    const alive = () => {
      if (!o.sseTimeout) return;
      if (timer) this.env.clearTimeout(timer);
      timer = this.env.setTimeout(() => this.closed(new PulseError("timeout", `EventSource to ${ch.name}: nothing for ${o.sseTimeout} ms`)), o.sseTimeout);
    };
    const on = (e) => {
      alive();
      this.ctx.message(ch.name, { channel: ch.name, id: e.lastEventId || null, data: e.data, event: e.type === "message" ? undefined : e.type });
    };
    es.onopen = () => {
      alive();
      this.opened();
    };
    es.onmessage = on;
    es.addEventListener("pulse-gap", () => this.ctx.gap(ch.name));
    if (o.pingEvent) es.addEventListener(o.pingEvent, alive);
    for (const ev of new Set([...this.client.events, ...ch.events])) es.addEventListener(ev, on);
    // The browser would reconnect on its own, from its own last id and
    // without our backoff: close, and let the client decide.
    es.onerror = () => this.closed(new PulseError("closed", `EventSource to ${ch.name} failed`));
    const stop = () => {
      if (timer) this.env.clearTimeout(timer);
      es.close();
    };
    this.streams.set(ch.name, { stop, es });
  }
}

class LongPollTransport extends PerChannel {
  constructor(client, ctx) {
    super(client, ctx);
    this.kind = "longpoll";
  }
  subscribe(ch) {
    if (ch.pattern) return this.unsupported(ch);
    const abort = new AbortController();
    const stream = { stop: () => abort.abort() };
    this.streams.set(ch.name, stream);
    this.poll(ch, stream, abort.signal);
  }
  async poll(ch, stream, signal) {
    const grace = this.env.setTimeout(() => this.opened(), this.client.opts.pollOpenGrace);
    try {
      while (this.streams.get(ch.name) === stream) {
        const headers = {};
        const m = ch.lastId && ID.exec(ch.lastId);
        if (m) {
          headers["If-Modified-Since"] = new Date(m[1] * 1000).toUTCString();
          headers["If-None-Match"] = m[2];
        }
        // a poll on a connection that died would wait for ever: after
        // pollTimeout it is abandoned and asked again
        const ctl = new AbortController();
        const abort = () => ctl.abort();
        signal.addEventListener("abort", abort);
        let expired = false;
        const t = this.env.setTimeout(() => {
          expired = true;
          ctl.abort();
        }, this.client.opts.pollTimeout);
        let r;
        try {
          r = await this.env.fetch(this.url(ch, ch.lastId && !m ? { last_event_id: ch.lastId } : {}), { headers, signal: ctl.signal, cache: "no-store" });
        } catch (e) {
          if (expired && !signal.aborted) continue;
          throw e;
        } finally {
          this.env.clearTimeout(t);
          signal.removeEventListener("abort", abort);
        }
        if (r.status === 200) {
          this.opened();
          if (r.headers.get("Pulse-Gap")) this.ctx.gap(ch.name);
          const lm = Date.parse(r.headers.get("Last-Modified"));
          const tag = r.headers.get("Etag");
          const id = lm >= 0 && tag != null ? `${lm / 1000}:${tag.replace(/"/g, "")}` : null;
          const type = r.headers.get("Content-Type") || "";
          // binary exactly when the WebSocket would send a binary frame
          const data = /^application\/octet-stream\s*(;|$)/i.test(type) ? new Uint8Array(await r.arrayBuffer()) : await r.text();
          this.ctx.message(ch.name, { channel: ch.name, id, data, contentType: type || undefined });
        } else if (r.status === 304 || r.status === 408) {
          this.opened();
          if (r.status === 304) await new Promise((ok) => this.env.setTimeout(ok, this.client.opts.pollInterval));
        } else {
          throw new PulseError("http", `long-poll ${ch.name}: HTTP ${r.status}`, { status: r.status });
        }
      }
    } catch (e) {
      if (!signal.aborted) this.closed(e instanceof PulseError ? e : new PulseError("closed", String(e)));
    } finally {
      this.env.clearTimeout(grace);
    }
  }
}

const FACTORIES = {
  websocket: (c, ctx) => new WebSocketTransport(c, ctx),
  eventsource: (c, ctx) => new EventSourceTransport(c, ctx),
  longpoll: (c, ctx) => new LongPollTransport(c, ctx),
};

// -------------------------------------------------------------------- client

export class Pulse extends Emitter {
  constructor(options = {}) {
    super();
    this.opts = { ...DEFAULTS, ...options };
    this.env = { ...defaultEnv(), ...(options.env || {}) };
    this.factories = { ...FACTORIES, ...(options.factories || {}) };
    this.ladder = this.opts.transports.filter((t) => this.factories[t]);
    // EventSource event names to listen for, besides "message"
    this.events = new Set(options.events || []);
    this.channels = new Map();
    this.wildcards = new Set(); // the pattern channels among them
    this.pending = new Map();
    this.nextId = 1;
    this.status = "offline";
    this.transport = null;
    this.rung = 0; // index in the ladder of the transport in use
    this.attempt = 0; // failed rounds in a row
    this.timer = null;
    this.stopped = true;
    this.listen();
  }

  get transportName() {
    return this.transport ? this.transport.kind : null;
  }

  /** Subscribes to a channel; returns the subscription. */
  subscribe(name, onMessage, opts = {}) {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = new Channel(this, name, opts);
      this.channels.set(name, ch);
      if (ch.pattern) this.wildcards.add(ch);
      if (this.transport && this.transport.isOpen) this.transport.subscribe(ch);
    } else if ((opts.events || []).some((e) => !ch.events.has(e))) {
      for (const e of opts.events) ch.events.add(e);
      if (this.transport && this.transport.isOpen && this.transport.kind === "eventsource") this.transport.repace(ch);
    }
    if (onMessage) ch.listeners.add(onMessage);
    if (this.stopped && this.opts.autoConnect && this.status !== "paused") this.connect();
    const client = this;
    return {
      channel: name,
      unsubscribe() {
        ch.listeners.delete(onMessage);
        if (!ch.listeners.size) client.unsubscribe(name);
      },
      setMode: (mode, o = {}) => client.setMode(name, mode, o),
      refresh: () => client.refresh(name),
      get lastEventId() {
        return ch.lastId;
      },
    };
  }

  unsubscribe(name) {
    const ch = this.channels.get(name);
    if (!ch) return;
    this.channels.delete(name);
    this.wildcards.delete(ch);
    if (this.transport && this.transport.isOpen) this.transport.unsubscribe(ch);
  }

  /** live, interval ({interval: ms}), manual; {throttle: ms} with live. */
  setMode(name, mode, o = {}) {
    const ch = this.channels.get(name);
    if (!ch) throw new PulseError("not_subscribed", `not subscribed to ${name}`);
    const was = ch.mode;
    ch.setPace({ mode, ...o });
    if (was === "manual" && ch.mode !== "manual") ch.deliver(ch.held.splice(0));
    if (this.transport && this.transport.isOpen) this.transport.repace(ch);
    this.emit("mode", name, ch.mode);
  }

  /** In manual mode: deliver what is held now. */
  async refresh(name) {
    const ch = this.channels.get(name);
    if (!ch) throw new PulseError("not_subscribed", `not subscribed to ${name}`);
    const t = this.transport;
    if (ch.held.length) ch.deliver(ch.held.splice(0));
    if (t && t.isOpen && t.fetchHeld && ch.mode === "manual") await t.fetchHeld(ch);
  }

  /** A pulse.v1 command; resolves with {status, data} from the upstream. */
  send(channel, data, opts = {}) {
    return this.request({ type: "command", channel, data }, null, opts.timeout).then((f) => ({ status: f.status, data: f.data }));
  }

  /** A pulse.v1 publish (on a location that lets the socket publish). */
  publish(channel, data, opts = {}) {
    const f = { type: "publish", channel, data, event: opts.event, content_type: opts.contentType, key: opts.key };
    return this.request(f, null, opts.timeout);
  }

  request(frame, via, timeout) {
    const t = via || this.transport;
    return new Promise((resolve, reject) => {
      if (!t || t.kind !== "websocket" || (!via && !t.isOpen)) {
        reject(new PulseError("unavailable", "Not connected over a pulse.v1 WebSocket."));
        return;
      }
      const id = this.nextId++;
      const timer = this.env.setTimeout(() => {
        this.pending.delete(id);
        reject(new PulseError("timeout", `No reply to ${frame.type} in time.`));
      }, timeout || this.opts.commandTimeout);
      this.pending.set(id, { resolve, reject, timer, t });
      t.send({ ...frame, id });
    });
  }

  connect() {
    this.drop(); // one transport at a time, whoever calls
    this.stopped = false;
    this.attempt = 0;
    this.rung = 0;
    this.start("connecting");
  }

  close() {
    this.stopped = true;
    this.drop();
    this.setStatus("offline");
  }

  pause() {
    this.stopped = true;
    this.drop();
    this.setStatus("paused");
  }

  resume() {
    if (this.stopped) this.connect();
  }

  // ------------------------------------------------------------- internals

  setStatus(s) {
    if (s !== this.status) {
      this.status = s;
      this.emit("status", s, this.transportName);
    }
  }

  listen() {
    const w = this.env.window;
    const d = this.env.document;
    if (w && w.addEventListener) {
      w.addEventListener("offline", () => {
        if (this.stopped) return;
        this.drop();
        this.setStatus("offline");
      });
      w.addEventListener("online", () => {
        // back online: reconnect now, unless a transport is open already
        if (!this.stopped && !(this.transport && this.transport.isOpen)) this.connect();
      });
    }
    if (d && d.addEventListener) {
      d.addEventListener("visibilitychange", () => {
        if (d.visibilityState === "hidden") {
          if (this.opts.pauseWhenHidden && !this.stopped) {
            this.pause();
            this.hiddenPause = true;
          }
        } else if (this.hiddenPause) {
          this.hiddenPause = false;
          this.connect();
        } else if (this.timer && !this.transport) {
          // waiting out a backoff while hidden: try now that someone looks
          this.env.clearTimeout(this.timer);
          this.timer = null;
          this.start("reconnecting");
        }
      });
    }
  }

  drop() {
    for (const t of [this.transport, this.probe]) if (t) t.close();
    this.transport = this.probe = null;
    for (const k of ["timer", "upgradeTimer", "openTimer", "tokenTimer"]) {
      if (this[k]) this.env.clearTimeout(this[k]);
      this[k] = null;
    }
    this.failPending(null);
  }

  failPending(t) {
    for (const [id, p] of this.pending) {
      if (t && p.t !== t) continue;
      this.env.clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new PulseError("disconnected", "The connection closed before the reply."));
    }
  }

  async token() {
    if (!this.opts.token) return null;
    const tok = await this.opts.token();
    const exp = tok ? jwtExpiry(tok) : 0;
    if (this.tokenTimer) this.env.clearTimeout(this.tokenTimer);
    this.tokenTimer = null;
    if (exp) {
      const wait = Math.max(5000, exp - this.opts.refreshMargin - this.env.now());
      this.tokenTimer = this.env.setTimeout(() => this.refreshToken(), wait);
    }
    return tok;
  }

  async refreshToken() {
    this.tokenTimer = null;
    try {
      const tok = await this.token();
      const t = this.transport;
      // pulse.v1 moves the socket's expiry; HTTP streams take the new
      // token when the server ends them at the old one's expiry
      if (tok && t && t.kind === "websocket" && t.isOpen) t.authenticate(tok, false);
    } catch (e) {
      this.emit("error", e);
    }
  }

  /** Opens the transport of the current rung. */
  async start(status) {
    this.timer = null;
    this.setStatus(status);
    let tok;
    try {
      tok = await this.token();
    } catch (e) {
      this.emit("error", new PulseError("token", `The token provider failed: ${e && e.message}`));
      this.retry();
      return;
    }
    if (this.stopped) return;
    const t = this.make(this.rung, false);
    this.transport = t;
    this.openTimer = this.env.setTimeout(() => t.closed(new PulseError("timeout", `${t.kind} did not open in time.`)), this.opts.openTimeout);
    t.open(this.channels, tok);
  }

  make(rung, probing) {
    const kind = this.ladder[rung];
    const ctx = {
      open: () => this.opened(t, rung),
      message: (name, msg) => {
        if (t !== this.transport) return;
        const ch = this.channels.get(name);
        if (ch) ch.receive(msg, t.serverPaced);
        // and the wildcards it matches (each dedupes by its channel's id: a
        // channel subscribed both ways comes once per subscription)
        for (const w of this.wildcards) {
          if (matchPattern(w.name, name)) w.receive(msg, t.serverPaced);
        }
      },
      gap: (name) => t === this.transport && this.emit("gap", name),
      frame: (f) => this.frame(f, t),
      close: (err) => this.closed(t, err, probing),
    };
    const t = this.factories[kind](this, ctx);
    t.kind = t.kind || kind;
    return t;
  }

  opened(t, rung) {
    t.isOpen = true;
    if (t === this.probe) {
      // the better transport works again: move over, resume from the last ids
      const old = this.transport;
      this.probe = null;
      this.transport = t;
      this.rung = rung;
      if (this.probeTimer) this.env.clearTimeout(this.probeTimer);
      if (old) {
        old.close();
        this.failPending(old);
      }
    } else if (t !== this.transport) {
      return;
    }
    if (this.openTimer) this.env.clearTimeout(this.openTimer);
    this.openTimer = null;
    this.attempt = 0;
    this.setStatus(t.kind === "longpoll" ? "polling" : "live");
    this.emit("transport", t.kind);
    if (this.rung > 0 && this.opts.upgradeAfter) this.scheduleUpgrade(this.opts.upgradeAfter);
  }

  scheduleUpgrade(after) {
    if (this.upgradeTimer) this.env.clearTimeout(this.upgradeTimer);
    this.upgradeTimer = this.env.setTimeout(async () => {
      this.upgradeTimer = null;
      if (this.stopped || !this.transport || this.rung === 0) return;
      let tok;
      try {
        tok = await this.token();
      } catch {
        tok = null;
      }
      if (this.stopped || !this.transport) return;
      const p = this.make(0, true);
      this.probe = p;
      p.probeNext = Math.min(after * 2, 600000);
      this.probeTimer = this.env.setTimeout(() => p.closed(new PulseError("timeout", "probe did not open")), this.opts.openTimeout);
      p.open(this.channels, tok);
    }, after);
  }

  frame(f, t) {
    const p = f.id != null && this.pending.get(f.id);
    if (p && p.t === t) {
      this.pending.delete(f.id);
      this.env.clearTimeout(p.timer);
      if (f.type === "error") p.reject(new PulseError(f.code, f.message, { frame: f }));
      else p.resolve(f);
      return;
    }
    if (t !== this.transport) return;
    if (f.type === "error") this.emit("error", new PulseError(f.code, f.message, { channel: f.channel, frame: f }));
    else if (f.type === "gone") this.emit("gone", f.channel);
  }

  closed(t, err, probing) {
    if (probing) {
      if (this.probeTimer) this.env.clearTimeout(this.probeTimer);
      if (t === this.probe) {
        this.probe = null;
        this.scheduleUpgrade(t.probeNext);
      }
      return;
    }
    if (t !== this.transport) return;
    this.transport = null;
    this.failPending(t);
    if (this.openTimer) this.env.clearTimeout(this.openTimer);
    this.openTimer = null;
    if (this.upgradeTimer) this.env.clearTimeout(this.upgradeTimer);
    this.upgradeTimer = null;
    if (this.probe) {
      this.probe.close();
      this.probe = null;
    }
    if (this.stopped) return;
    this.emit("disconnect", err, t.kind);
    if (err && err.status === 4401) {
      this.start("reconnecting"); // the token expired: a fresh one, at once
    } else if (!t.isOpen && this.rung < this.ladder.length - 1) {
      this.rung++; // it never opened: fall back at once
      this.start(this.status === "connecting" ? "connecting" : "reconnecting");
    } else {
      // it was open (reconnect on the same rung), or the last rung failed
      if (!t.isOpen) this.rung = 0;
      this.retry();
    }
  }

  retry() {
    const o = this.opts;
    if (this.attempt >= o.maxAttempts) {
      this.stopped = true;
      this.setStatus("offline");
      this.emit("error", new PulseError("gave_up", `Gave up after ${this.attempt} attempts.`));
      return;
    }
    const delay = backoffDelay(this.attempt++, o.minDelay, o.maxDelay, this.env.random);
    this.setStatus("reconnecting");
    this.emit("retry", delay, this.attempt);
    this.timer = this.env.setTimeout(() => this.start("reconnecting"), delay);
  }
}

export default Pulse;
