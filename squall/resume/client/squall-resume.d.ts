// Types of squall-resume.mjs (and of the global SquallResume that the
// classic script squall-resume.js defines).

/** A position: "<offset>-<epoch>", as the server writes it. */
export type Position = string;

/**
 * - `connecting`: a transport is being opened and the subscription asked for.
 * - `open`: the server confirmed the subscription (`feed.transport` says over what).
 * - `retrying`: waiting (exponential backoff, full jitter) before connecting again.
 * - `failed`: the server refused for good (`feed.error`); nothing more is tried.
 * - `closed`: `feed.close()` was called.
 */
export type State = 'connecting' | 'open' | 'retrying' | 'failed' | 'closed';

export type Transport = 'websocket' | 'eventsource' | 'poll';

/** Defaults of the options in milliseconds. */
export declare const DEFAULTS: Readonly<{
  minDelay: number;
  maxDelay: number;
  connectTimeout: number;
  heartbeatGrace: number;
  upgradeDelay: number;
  maxUpgradeDelay: number;
}>;

/** An error met: from the server (`code` is its code, or a poll's HTTP status) or the network (`code` 0, or a WebSocket close code). */
export declare class ResumeError extends Error {
  readonly name: 'ResumeError';
  /** The server's error code (400, 403, 409, 429: not temporary; 500, 503: temporary), an HTTP status, a close code, or 0. */
  readonly code: number;
  /** True when the client tries again (after a backoff); false when it stopped (state `failed`). */
  readonly temporary: boolean;
  readonly transport: Transport;
  constructor(message: string, code: number, temporary: boolean, transport: Transport);
}

export interface FollowOptions {
  /** The channel (what the WebSocket subscribes to). */
  channel?: string;
  /** URLs of the transports, tried in this order; the next one is used when one never gets through. */
  websocket?: string | null;
  eventsource?: string | null;
  poll?: string | null;
  /** A position to start after (the one the page was rendered at). */
  since?: Position | null;
  /** A publication, once, in order; `position` is null for one published without a position. */
  onmessage?: (data: string, position: Position | null) => void;
  /** Publications were lost: reload the state, then apply what follows. */
  onreset?: (position: Position) => void;
  onstate?: (state: State, feed: Feed) => void;
  /** Every error; `error.temporary` false means the feed stopped. */
  onerror?: (error: ResumeError) => void;
  /** The first wait's ceiling, and the largest (ms; defaults 500 and 30,000). */
  minDelay?: number;
  maxDelay?: number;
  /** A connection that confirms no subscription in this long is given up (ms; 10,000). */
  connectTimeout?: number;
  /** Silence tolerated past the server's heartbeat interval before resuming elsewhere (ms; 10,000). */
  heartbeatGrace?: number;
  /** After a fallback, the wait before trying a WebSocket again, doubled after each failed try up to maxUpgradeDelay (ms; 60,000 and 600,000). */
  upgradeDelay?: number;
  maxUpgradeDelay?: number;
  /** EventSource's withCredentials. */
  withCredentials?: boolean;
  /** What to use instead of the globals (outside a browser, or in tests). */
  WebSocket?: new (url: string) => WebSocket;
  EventSource?: new (url: string, init?: EventSourceInit) => EventSource;
  fetch?: typeof fetch;
  /** Where `online`/`offline` are listened for (default: window; null: nowhere). */
  window?: EventTarget | null;
  /** Where `visibilitychange` is listened for (default: document; null: nowhere). */
  document?: (EventTarget & {visibilityState: string}) | null;
}

export interface Feed {
  /** The position of the last publication delivered (or the start), or null. */
  readonly position: Position | null;
  readonly state: State;
  /** The transport of the open connection (the last one, once closed). */
  readonly transport: Transport | null;
  /** Publications delivered. */
  readonly received: number;
  /** Resets delivered. */
  readonly resets: number;
  /** Connections tried. */
  readonly attempts: number;
  /** Publications the server replays on this connection (missed while away), known when `open`. */
  readonly missed: number;
  /** The last error; when `failed`, the one that stopped the feed. */
  readonly error: ResumeError | null;
  readonly closed: boolean;
  /** Stops: closes the connection, cancels every timer and listener. */
  close(): void;
  /** Connects now rather than after the backoff's wait (a connection being made, or open with its heartbeat on time, is kept). */
  reconnect(): void;
}

export declare function follow(options: FollowOptions): Feed;

/** The position's parts (offset as a decimal string, exact at any size), or null if it is not one. */
export declare function parsePosition(position: unknown): {offset: string; epoch: string} | null;

/** -1, 0 or 1 as the decimal offset `a` is before, at or after `b`. */
export declare function compareOffsets(a: string, b: string): -1 | 0 | 1;

declare global {
  /** What the classic script squall-resume.js defines. */
  var SquallResume: {
    DEFAULTS: typeof DEFAULTS;
    ResumeError: typeof ResumeError;
    follow: typeof follow;
    parsePosition: typeof parsePosition;
    compareOffsets: typeof compareOffsets;
  };
}
