// Types of @pulse-push/react (src/index.js). Checked by `npm run typecheck`.
import type { ReactNode, ReactElement } from "react";
import type { Message, Mode, Pulse, PulseOptions, Status, TransportName } from "@pulse-push/client";

export interface PulseProviderProps {
  /** A client of your own; else one is made from `options` and closed on unmount. */
  client?: Pulse;
  options?: PulseOptions;
  children?: ReactNode;
}
export declare function PulseProvider(props: PulseProviderProps): ReactElement;
export declare function usePulse(): Pulse;

export interface PulseStatus {
  status: Status;
  transport: TransportName | null;
  /** ms since the epoch of the last message on any channel, or null. */
  lastUpdate: number | null;
}
export declare function usePulseStatus(): PulseStatus;

export interface Received<T> {
  id: string | null;
  event?: string;
  /** The message's data, through `parse` (JSON when it parses). */
  data: T;
  raw: Message;
}

export interface ChannelOptions<T> {
  mode?: Mode;
  /** ms between writes in interval mode (implies mode "interval"). */
  interval?: number;
  /** ms, with live: at most one write per throttle. */
  throttle?: number;
  /** EventSource event names besides "message". */
  events?: string[];
  parse?: (message: Message) => T;
}

export interface ChannelState<T> {
  messages: Received<T>[];
  last: Received<T> | null;
  lastUpdate: number | null;
  /** Messages delivered since the subscription began. */
  count: number;
  status: Status;
  mode: Mode;
  /** In manual mode: fetch what is held now. */
  refresh(): Promise<void>;
}

export declare function useChannel<T = unknown>(channel: string, options?: ChannelOptions<T> & { limit?: number }): ChannelState<T>;

export interface LatestState<T> extends ChannelState<T> {
  values: Record<string, T>;
}
export declare function useLatest<T = any>(
  channel: string,
  key: string | ((data: T) => string | number | null | undefined),
  options?: ChannelOptions<T> & { remove?: (data: T) => boolean; limit?: number },
): LatestState<T>;

export declare function parseData(message: Message): unknown;
export declare const STATUS_LABELS: Record<Status, string>;
export declare function StatusPill(props: { className?: string; labels?: Partial<Record<Status, string>> }): ReactElement;
