// React bindings of pulse.js. Plain JavaScript (no JSX), so it needs no
// build step; React is a peer dependency.
//
// Updates are batched per animation frame: a channel that gets 50 messages
// a second renders its widget at most once per frame, however the messages
// arrive (one WebSocket frame each, or a batch).

import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useReducer, useRef, useSyncExternalStore } from "react";
import { Pulse } from "@pulse-push/client";

const PulseContext = createContext(null);

/** Provides a Pulse client: the one given as `client`, or one it makes
 *  from `options` and closes when it unmounts. */
export function PulseProvider({ client, options, children }) {
  const own = useRef(null);
  if (!client && !own.current) own.current = new Pulse(options || {});
  const c = client || own.current;
  useEffect(() => {
    const mine = own.current;
    if (!mine) return undefined;
    // StrictMode mounts twice: what the first cleanup closed opens again
    if (mine.status === "offline" && mine.channels.size) mine.connect();
    return () => mine.close();
  }, []);
  return createElement(PulseContext.Provider, { value: c }, children);
}

/** The client of the nearest PulseProvider. */
export function usePulse() {
  const c = useContext(PulseContext);
  if (!c) throw new Error("usePulse: no <PulseProvider> above this component");
  return c;
}

// Per client: the time of the last message on any channel, for
// "last updated", shared by every hook of that client.
const lastUpdates = new WeakMap();
function lastUpdateStore(client) {
  let s = lastUpdates.get(client);
  if (!s) {
    s = { at: null, listeners: new Set() };
    client.on("message", () => {
      s.at = Date.now();
      for (const fn of s.listeners) fn();
    });
    lastUpdates.set(client, s);
  }
  return s;
}

function useStatusOf(client) {
  const subscribe = useCallback((cb) => client.on("status", cb), [client]);
  return useSyncExternalStore(
    subscribe,
    () => client.status,
    () => client.status,
  );
}

/** {status, transport, lastUpdate}: the connection's status, the transport
 *  in use, and the time (ms) of the last message on any channel. Re-renders
 *  on status changes, and for lastUpdate at the first message and then at
 *  most once a second. */
export function usePulseStatus() {
  const client = usePulse();
  const status = useStatusOf(client);
  const store = lastUpdateStore(client);
  const subscribe = useCallback(
    (cb) => {
      let timer = null;
      let first = true;
      const fn = () => {
        if (first) {
          first = false;
          cb();
        } else if (!timer) {
          timer = setTimeout(() => ((timer = null), cb()), 1000);
        }
      };
      store.listeners.add(fn);
      return () => {
        store.listeners.delete(fn);
        if (timer) clearTimeout(timer);
      };
    },
    [store],
  );
  const lastUpdate = useSyncExternalStore(subscribe, () => store.at, () => store.at);
  return { status, transport: client.transportName, lastUpdate };
}

/** JSON when the text is JSON, else the text (or the bytes). */
export function parseData(m) {
  if (typeof m.data !== "string") return m.data;
  try {
    return JSON.parse(m.data);
  } catch {
    return m.data;
  }
}

const frame =
  typeof requestAnimationFrame === "function"
    ? (fn) => requestAnimationFrame(fn)
    : (fn) => setTimeout(fn, 16);

function reduce(state, action) {
  if (action.type === "reset") return INITIAL;
  return { ...action.fold(state, action.batch), count: state.count + action.batch.length };
}
const INITIAL = { messages: [], last: null, lastUpdate: null, values: {}, count: 0 };

/** The subscription under both hooks: `fold(state, batch)` makes the next
 *  state from a frame's messages (each {id, event, data, raw}). */
function useSubscription(channel, opts, fold) {
  const client = usePulse();
  const status = useStatusOf(client);
  const [state, dispatch] = useReducer(reduce, INITIAL);
  const { mode = "live", interval, throttle, events, parse = parseData } = opts;
  const pending = useRef([]);
  const foldRef = useRef(fold);
  foldRef.current = fold;
  const parseRef = useRef(parse);
  parseRef.current = parse;
  const eventsKey = (events || []).join(",");

  useEffect(() => {
    let scheduled = false;
    let live = true;
    const flush = () => {
      scheduled = false;
      if (!live || !pending.current.length) return;
      const batch = pending.current.splice(0);
      dispatch({ fold: foldRef.current, batch });
    };
    const sub = client.subscribe(
      channel,
      (m) => {
        pending.current.push({ id: m.id, event: m.event, data: parseRef.current(m), raw: m });
        if (!scheduled) {
          scheduled = true;
          frame(flush);
        }
      },
      { mode, interval, throttle, events: events || [] },
    );
    return () => {
      live = false;
      pending.current = [];
      sub.unsubscribe();
      dispatch({ type: "reset" });
    };
    // the mode is applied by the effect below, without a resubscribe
  }, [client, channel, eventsKey]);

  const paced = useRef({ mode, interval, throttle });
  useEffect(() => {
    const p = paced.current;
    if (p.mode === mode && p.interval === interval && p.throttle === throttle) return;
    paced.current = { mode, interval, throttle };
    if (client.channels.has(channel)) client.setMode(channel, mode, { interval, throttle });
  }, [client, channel, mode, interval, throttle]);

  const refresh = useCallback(() => client.refresh(channel), [client, channel]);
  return { ...state, status, mode: interval ? "interval" : mode, refresh };
}

/** The latest messages of a channel (at most `limit`, newest last) and the
 *  connection's status. `mode` "live" | "interval" (with `interval` ms) |
 *  "manual"; `throttle` ms with live. */
export function useChannel(channel, opts = {}) {
  const limit = opts.limit || 50;
  return useSubscription(channel, opts, (s, batch) => {
    const messages = s.messages.concat(batch);
    if (messages.length > limit) messages.splice(0, messages.length - limit);
    return { ...s, messages, last: batch[batch.length - 1], lastUpdate: Date.now() };
  });
}

/** Conflated state: the latest data per key, where `key` is a field of the
 *  message's data or a function of it, in the order keys were last updated.
 *  `remove(data)` true drops the key; past `limit` keys (default 1000) the
 *  least recently updated go. */
export function useLatest(channel, key, opts = {}) {
  const keyOf = useMemo(() => (typeof key === "function" ? key : (d) => d && d[key]), [key]);
  const { remove, limit = 1000 } = opts;
  return useSubscription(channel, opts, (s, batch) => {
    const values = { ...s.values };
    for (const m of batch) {
      const k = keyOf(m.data);
      if (k == null) continue;
      delete values[k]; // re-inserted last: the most recently updated
      if (!(remove && remove(m.data))) values[k] = m.data;
    }
    const keys = Object.keys(values);
    for (let i = 0; i < keys.length - limit; i++) delete values[keys[i]];
    return { ...s, values, last: batch[batch.length - 1], lastUpdate: Date.now() };
  });
}

export const STATUS_LABELS = {
  connecting: "Connecting",
  live: "Live",
  reconnecting: "Reconnecting",
  polling: "Live (polling)",
  offline: "Offline",
  paused: "Paused",
};

/** A pill with the connection's status: class `pulse-pill pulse-<status>`,
 *  `data-status` and `data-transport` for styles and tests. */
export function StatusPill({ className, labels }) {
  const { status, transport } = usePulseStatus();
  const text = (labels && labels[status]) || STATUS_LABELS[status] || status;
  return createElement(
    "span",
    {
      className: `pulse-pill pulse-${status}${className ? " " + className : ""}`,
      "data-status": status,
      "data-transport": transport || "",
      title: transport ? `${text} over ${transport}` : text,
      role: "status",
    },
    text,
  );
}
