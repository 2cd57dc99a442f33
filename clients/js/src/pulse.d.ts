// Types of pulse.js (src/pulse.js). Checked by `npm run typecheck`.

export type Status = "connecting" | "live" | "reconnecting" | "polling" | "offline" | "paused";
export type TransportName = "websocket" | "eventsource" | "longpoll";
export type Mode = "live" | "interval" | "manual";

export declare const STATUSES: readonly Status[];

/** The delay before reconnect attempt n (0-based): full jitter in [0, min(max, min * 2^n)). */
export declare function backoffDelay(n: number, min: number, max: number, random?: () => number): number;

/** Orders two "time:tag" message ids: <0, 0, >0, or NaN when either is another kind of id. */
export declare function compareIds(a: string, b: string): number;

/** A pulse.v1 wildcard: some segment is exactly "*" or "**" ("metrics.*"). */
export declare function isPattern(channel: string): boolean;

/** The server's wildcard rule: "*" is one segment, a last "**" one or more. */
export declare function matchPattern(pattern: string, channel: string): boolean;

export declare class PulseError extends Error {
  constructor(code: string, message?: string, extra?: object);
  /** A pulse.v1 error code ("forbidden", "bad_request", ...) or one of the
   *  client's own: "unavailable", "timeout", "disconnected", "closed",
   *  "token", "gave_up", "http", "not_subscribed", "unsupported" (a
   *  wildcard on a transport other than the pulse.v1 WebSocket). */
  code: string;
  /** The WebSocket close code or the HTTP status, when there is one. */
  status?: number;
  channel?: string;
  frame?: object;
}

export interface Message<T = unknown> {
  channel: string;
  /** The id to resume from ("time:tag"), or null when the server gave none. */
  id: string | null;
  /** Text, or bytes for a binary message. On pulse.v1, JSON published as JSON is still its text. */
  data: T;
  /** The EventSource / publish event name, when there is one. */
  event?: string;
  contentType?: string;
}

export interface Environment {
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  fetch?: typeof fetch;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
  now?: () => number;
  random?: () => number;
  window?: Pick<Window, "addEventListener"> | null;
  document?: Pick<Document, "addEventListener" | "visibilityState"> | null;
  location?: { href: string } | null;
}

export interface PulseOptions {
  /** The pulse.v1 WebSocket location (default "/ws"). */
  ws?: string;
  /** The EventSource / long-poll location; {channel} is replaced (default "/sub/{channel}"). */
  sub?: string;
  /** The transports to try, best first (default all three). */
  transports?: TransportName[];
  /** Reconnect backoff bounds in ms (default 1000 and 30000). */
  minDelay?: number;
  maxDelay?: number;
  /** Failed rounds in a row before the status is "offline" for good (default Infinity). */
  maxAttempts?: number;
  /** A transport not open after this many ms has failed (default 10000). */
  openTimeout?: number;
  /** A long-poll still waiting after this many ms counts as connected (default 2000). */
  pollOpenGrace?: number;
  /** Wait after a 304 of an interval-poll location (default 1000). */
  pollInterval?: number;
  /** A poll unanswered this long (ms) is abandoned and asked again: a dead connection (default 60000). */
  pollTimeout?: number;
  /** EventSource: a stream silent this long (ms) has failed; set it above the location's ping interval (default 0: off). */
  sseTimeout?: number;
  /** The EventSource event of the location's pings (default "ping"). */
  pingEvent?: string;
  /** pulse.v1 ping interval and the time to answer it, in ms (default 25000 and 10000; 0: off). */
  heartbeat?: number;
  heartbeatTimeout?: number;
  /** On a fallback transport, try the best one again after this many ms, doubling to 10 min (default 60000; 0: never). */
  upgradeAfter?: number;
  /** Time to wait for a command's reply in ms (default 15000). */
  commandTimeout?: number;
  /** Called before each connect and before the token expires. */
  token?: (() => string | null | Promise<string | null>) | null;
  /** Query argument of the token on EventSource and long-poll (default "token"). */
  tokenParam?: string;
  /** Ask for a new token this many ms before its exp (default 30000). */
  refreshMargin?: number;
  /** Close the connection while the page is hidden (default false). */
  pauseWhenHidden?: boolean;
  /** The first subscribe connects (default true). */
  autoConnect?: boolean;
  /** EventSource event names to listen for on every channel, besides "message". */
  events?: string[];
  /** Replaces globals (tests, non-browser hosts). */
  env?: Environment;
  /** Replaces or adds transports (tests). */
  factories?: Partial<Record<TransportName, (client: Pulse, ctx: object) => object>>;
}

export interface SubscribeOptions {
  mode?: Mode;
  /** With mode "interval" implied: the server writes the channel every this many ms. */
  interval?: number;
  /** Live, at most one write per this many ms. */
  throttle?: number;
  /** Resume from this id. */
  lastEventId?: string;
  /** EventSource event names of this channel, besides "message". */
  events?: string[];
}

export interface Subscription {
  /** The channel, or a wildcard pattern (pulse.v1 only): its messages name
   *  the channels they came from. */
  readonly channel: string;
  /** The id this channel resumes from (null for a wildcard: no resume). */
  readonly lastEventId: string | null;
  unsubscribe(): void;
  setMode(mode: Mode, options?: { interval?: number; throttle?: number }): void;
  /** In manual mode: deliver what the server (or the client) holds now. */
  refresh(): Promise<void>;
}

export interface CommandReply<T = unknown> {
  status: number;
  data: T;
}

export interface PulseEvents {
  status: (status: Status, transport: TransportName | null) => void;
  message: (message: Message) => void;
  gap: (channel: string) => void;
  error: (error: PulseError) => void;
  gone: (channel: string) => void;
  retry: (delayMs: number, attempt: number) => void;
  transport: (transport: TransportName) => void;
  disconnect: (error: PulseError | undefined, transport: TransportName) => void;
  mode: (channel: string, mode: Mode) => void;
}

export declare class Pulse {
  constructor(options?: PulseOptions);
  readonly status: Status;
  readonly transportName: TransportName | null;
  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof PulseEvents>(event: E, listener: PulseEvents[E]): () => void;
  off<E extends keyof PulseEvents>(event: E, listener: PulseEvents[E]): void;
  subscribe<T = unknown>(channel: string, onMessage?: ((message: Message<T>) => void) | null, options?: SubscribeOptions): Subscription;
  unsubscribe(channel: string): void;
  setMode(channel: string, mode: Mode, options?: { interval?: number; throttle?: number }): void;
  refresh(channel: string): Promise<void>;
  /** A pulse.v1 command, answered by the location's pulse_websocket_upstream. */
  send<T = unknown>(channel: string, data: unknown, options?: { timeout?: number }): Promise<CommandReply<T>>;
  /** A pulse.v1 publish, on a location that lets the socket publish. */
  publish(channel: string, data: unknown, options?: { event?: string; contentType?: string; key?: string; timeout?: number }): Promise<{ type: "published"; channel: string; message_id: string; subscribers: number }>;
  connect(): void;
  close(): void;
  pause(): void;
  resume(): void;
}

export default Pulse;
