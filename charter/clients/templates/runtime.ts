// The fixed part of every generated TypeScript client: the query builder, the error, and the
// transport with sign-in. `charter gen client --lang ts` copies this file as `runtime.ts` into
// the package it writes, so the client depends on nothing but `fetch` (browsers, Node 18+,
// Deno, Bun). Python never reads it; the TypeScript tests compile it with `tsc --strict`.
//
// `Transport.request` is the one place a request is sent (`openEvents` opens a subscription's
// stream through it); with `encrypted: true` it seals RPC calls there (the encrypted RPC
// channel of docs/crypto.md, on Node's `crypto`, loaded only then).

/** Equals, not equal, less than (or equal), greater than (or equal), starts with, ends with,
 * contains (a substring, or an element of a list), between (inclusive; the value is a pair). */
export type Comparator = "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "sw" | "ew" | "ct" | "bt";

const OPERATORS: Record<Comparator, string> = {
  eq: "=", ne: "=ne=", lt: "=lt=", le: "=le=", gt: "=gt=", ge: "=ge=",
  sw: "=sw=", ew: "=ew=", ct: "=ct=", bt: "=bt=",
};

/** The value a condition compares an attribute of type `T` with: a pair for `bt`. */
export type ValueFor<T, C extends Comparator> = C extends "bt" ? readonly [T, T] : T | null;

/** The error envelope of every Charter error answer (SPEC section 2). */
export interface ErrorEnvelope {
  status: number;
  code: string;
  message: string;
  details?: unknown;
}

/** An error answer, with its envelope. `code` is the server's (`NOT_FOUND`,
 * `INVALID_PROPERTIES`...), or the client's own: `HTTP_ERROR` when the body was not an
 * envelope (from a proxy, say), `UNEXPECTED_RESPONSE` when a success's body was not JSON. */
export class CharterError extends Error implements ErrorEnvelope {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details: unknown = null) {
    super(message);
    this.name = "CharterError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The envelope, as the server sent it. */
  get envelope(): ErrorEnvelope {
    return { status: this.status, code: this.code, message: this.message, details: this.details };
  }

  static async fromResponse(response: Response): Promise<CharterError> {
    const text = await response.text();
    try {
      const error = (JSON.parse(text) as { error: ErrorEnvelope }).error;
      if (typeof error.code === "string" && typeof error.message === "string") {
        return new CharterError(Number(error.status), error.code, error.message,
                                error.details ?? null);
      }
    } catch {
      // not an envelope: below
    }
    return new CharterError(response.status, "HTTP_ERROR",
                            text.slice(0, 200) || response.statusText);
  }
}

/** `encodeURIComponent`, escaping `!'()*` too (as Python's `quote(safe="")`). */
function quote(text: string, safe = ""): string {
  let out = encodeURIComponent(text).replace(
    /[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  for (const c of safe) {
    out = out.split(encodeURIComponent(c)).join(c);
  }
  return out;
}

/** A value in the URL query language, typed by prefix so the server reads it as sent; `raw`:
 * a string left unprefixed, read by the attribute's declared type (a date, a UUID...). */
function queryValue(value: unknown, raw = false): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "boolean:true" : "boolean:false";
  if (typeof value === "number" || typeof value === "bigint") {
    return "number:" + quote(String(value));
  }
  if (typeof value === "string") return (raw ? "" : "string:") + quote(value);
  if (value instanceof Date) return quote(value.toISOString()); // typed by the attribute
  throw new TypeError(`a query value is a string, number, boolean, Date or null, not ${
    String(value)}`);
}

/** One condition, for `Query.anyOf` (build it with a query's `cond`). `raw`: the attribute's
 * values are text on the wire but not strings (dates, times, UUIDs, decimals). */
export class Condition {
  constructor(readonly attribute: string, readonly op: Comparator, readonly value: unknown,
              readonly raw = false) {
    if (!(op in OPERATORS)) throw new TypeError(`unknown comparator ${String(op)}`);
  }

  render(): string {
    const name = quote(this.attribute, ".$");
    if (this.op === "bt") {
      const [low, high] = this.value as readonly [unknown, unknown];
      return `${name}=bt=${queryValue(low, this.raw)},${queryValue(high, this.raw)}`;
    }
    return name + OPERATORS[this.op] + queryValue(this.value, this.raw);
  }
}

/** A query in the URL language of SPEC section 4: conditions (and-ed), any-of groups, `sort`,
 * `select`, `limit` and `offset`. `F` maps each attribute a condition may name to its value's
 * type; `A` names every attribute (for `sort` and `select`). Each method returns the query. */
export class Query<F, A extends string> {
  private readonly raw: ReadonlySet<string>;
  private readonly terms: string[] = [];
  private readonly sorts: string[] = [];
  private selected: string[] | null = null;
  private window: [number, number | null] | null = null;
  private skip: number | null = null;

  /** `raw`: the attributes whose values are text on the wire but not strings. */
  constructor(raw: readonly string[] = []) {
    this.raw = new Set(raw);
  }

  /** Records whose `attribute` compares with `value` (a pair for `bt`). */
  where<K extends keyof F & string, C extends Comparator>(
    attribute: K, op: C, value: ValueFor<F[K], C>): this {
    this.terms.push(this.cond(attribute, op, value).render());
    return this;
  }

  /** A condition for `anyOf`. */
  cond<K extends keyof F & string, C extends Comparator>(
    attribute: K, op: C, value: ValueFor<F[K], C>): Condition {
    return new Condition(attribute, op, value, this.raw.has(attribute));
  }

  /** Records matching at least one of `conditions` (an `|` group). */
  anyOf(...conditions: Condition[]): this {
    if (conditions.length) this.terms.push("[" + conditions.map((c) => c.render()).join("|") + "]");
    return this;
  }

  /** Order by `keys`: `"price"` or `"+price"` ascending, `"-price"` descending. */
  sort(...keys: Array<A | `+${A}` | `-${A}`>): this {
    for (const key of keys) this.sorts.push(key.startsWith("+") || key.startsWith("-") ? key : `+${key}`);
    return this;
  }

  /** Only these attributes (read it with the table's `values`, not `list`). */
  select(...attributes: A[]): this {
    this.selected = [...attributes];
    return this;
  }

  /** `limit(n)`: the first n; `limit(start, end)`: from start (inclusive) to end. */
  limit(count: number, end?: number): this {
    this.window = [count, end ?? null];
    return this;
  }

  /** Skip `count` records. */
  offset(count: number): this {
    this.skip = count;
    return this;
  }

  get selects(): boolean {
    return this.selected !== null;
  }

  /** The query string (without `?`). */
  toQueryString(): string {
    const parts = [...this.terms];
    if (this.sorts.length) parts.push("sort(" + this.sorts.map((k) => quote(k, "+-.")).join(",") + ")");
    if (this.selected !== null) parts.push("select(" + this.selected.map((a) => quote(a, "$")).join(",") + ")");
    if (this.window !== null) {
      const [count, end] = this.window;
      parts.push(end === null ? `limit(${count})` : `limit(${count},${end})`);
    }
    if (this.skip !== null) parts.push(`offset(${this.skip})`);
    return parts.join("&");
  }
}

/** A signed-in session's tokens (`POST /auth/login`, docs/auth.md). */
export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

/** Tokens and when the access token expires; refreshed a little before it does. */
export class Session {
  tokens: Tokens | null = null;
  expiresAt = 0;

  set(tokens: Tokens): void {
    this.tokens = tokens;
    this.expiresAt = Date.now() + ((tokens.expires_in ?? 900) - 30) * 1000;
  }

  stale(): boolean {
    return this.tokens !== null && Date.now() >= this.expiresAt;
  }

  headers(): Record<string, string> {
    return this.tokens === null ? {} : { authorization: `Bearer ${this.tokens.access_token}` };
  }
}

/** A byte stream's body, sent as `application/octet-stream`. */
export type Bytes = Uint8Array | ReadableStream<Uint8Array>;

/** One request's parts (`Transport.request`). */
export interface RequestOptions {
  query?: string;
  json?: unknown;
  bytes?: Bytes;
  headers?: Record<string, string>;
  retry?: boolean;
  /** Cancels the request (and the reading of its answer); the client's timeout then does not
   * apply: the caller decides when to give up (a subscription, say). */
  signal?: AbortSignal;
}

/** How a client sends requests. */
export interface TransportOptions {
  /** A `fetch` of your own (by default the global one). */
  fetch?: typeof fetch;
  /** Sent with every request. */
  headers?: Record<string, string>;
  /** Milliseconds before a request is abandoned (30 000 by default; 0: never). */
  timeout?: number;
  /** RPC calls through the encrypted channel (docs/crypto.md): a handshake at the first call,
   * then each call's arguments and result sealed, one call at a time. Node 18+ only (its
   * `crypto` module); not in browsers yet. */
  encrypted?: boolean;
}

const JSON_HEADERS = { "content-type": "application/json", accept: "application/json" };

/** A value as one URL path segment. */
export function pathSegment(value: unknown): string {
  return quote(String(value));
}

/** A route's query parameters (those left undefined are left out: the server's defaults
 * apply); a list repeats its name; a value other than a string is sent as JSON. */
export function queryParams(values: Record<string, unknown>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      params.append(key, typeof item === "string" ? item : JSON.stringify(item));
    }
  }
  return params.toString();
}

/** Only the entries whose value is given. */
export function present(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

/** A response's JSON body (no body: null); `CharterError` `UNEXPECTED_RESPONSE` when the body
 * is not JSON. The types are the compiler's: the body is not checked against them. */
export async function decode<T>(response: Response): Promise<T> {
  const text = await response.text();
  if (!text) return null as T;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CharterError(response.status, "UNEXPECTED_RESPONSE",
                           `the answer is not JSON (${String(error)})`);
  }
}

/** A response's body as a byte stream. */
export function byteStream(response: Response): ReadableStream<Uint8Array> {
  return response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
}

/** Sends requests with `fetch`: signs in, refreshes the access token before it expires (and
 * once more on a 401, then repeats the request), and throws `CharterError` on errors. */
export class Transport {
  readonly baseUrl: string;
  readonly headers: Record<string, string>;
  readonly session = new Session();
  private readonly fetcher: typeof fetch;
  private readonly timeout: number;
  private renewing: Promise<unknown> | null = null;
  readonly encrypted: boolean;
  private channel: ChannelSession | null = null;
  private channelTail: Promise<unknown> = Promise.resolve();

  constructor(baseUrl: string, options: TransportOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.fetcher = options.fetch ?? ((input, init) => fetch(input, init));
    this.headers = { ...(options.headers ?? {}) };
    this.timeout = options.timeout ?? 30_000;
    this.encrypted = options.encrypted ?? false;
  }

  /** Send one request; an error answer throws `CharterError`. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const retry = options.retry ?? true;
    if (retry && this.session.stale()) await this.renew(this.session.tokens);
    const url = this.baseUrl + path + (options.query ? `?${options.query}` : "");
    const used = this.session.tokens;
    const signed = path !== "/auth/refresh" ? this.session.headers() : {};
    const sent: Record<string, string> = {
      ...JSON_HEADERS, ...this.headers, ...signed, ...(options.headers ?? {}) };
    let body: BodyInit | undefined;
    const init: RequestInit & { duplex?: "half" } = { method, headers: sent };
    if (options.bytes !== undefined) {
      sent["content-type"] = "application/octet-stream";
      body = options.bytes as BodyInit; // (TypeScript 5.7+: Uint8Array<ArrayBufferLike> is not BodyInit)
      if (options.bytes instanceof ReadableStream) init.duplex = "half"; // streamed up
    } else if (options.json !== undefined) {
      body = JSON.stringify(options.json);
    }
    init.body = body;
    if (options.signal !== undefined) init.signal = options.signal;
    else if (this.timeout > 0) init.signal = AbortSignal.timeout(this.timeout);
    const sealable = this.encrypted && method === "POST" && path.startsWith("/rpc/")
      && path !== "/rpc/_handshake" && options.bytes === undefined;
    const response = sealable
      ? await this.sealedCall(url, path, typeof body === "string" ? body : "", init)
      : await this.fetcher(url, init);
    const resendable = !(options.bytes instanceof ReadableStream); // a stream is read once
    if (response.status === 401 && retry && used !== null && resendable) {
      await response.body?.cancel();
      await this.renew(used);
      return this.request(method, path, { ...options, retry: false });
    }
    if (response.status >= 400) throw await CharterError.fromResponse(response);
    return response;
  }

  /** One RPC call through the encrypted channel (calls queue: one at a time); its answer,
   * opened. A session the server no longer knows is opened again, the call sent once more. */
  private async sealedCall(url: string, path: string, body: string,
                           init: RequestInit): Promise<Response> {
    const run = async (): Promise<Response> => {
      for (let attempt = 1; ; attempt++) {
        if (this.channel === null) this.channel = await ChannelSession.open(this.fetcher, this.baseUrl);
        const channel = this.channel;
        const [counter, frame] = channel.seal(path, new TextEncoder().encode(body));
        const headers = { ...(init.headers as Record<string, string>), "content-type": SEALED };
        const response = await this.fetcher(url, { ...init, headers, body: frame as BodyInit });
        if (attempt === 1 && await channelExpired(response)) {
          this.channel = null; // nothing ran
          continue;
        }
        return channel.unseal(response, path, counter);
      }
    };
    const result = this.channelTail.then(run, run);
    this.channelTail = result.catch(() => undefined);
    return result;
  }

  /** A subscription's event stream, open (read it, or abort `signal`): signed as a request
   * is, with `Last-Event-ID` when resuming from `position`; an error answer throws. */
  async openEvents(path: string, query: string, position: number | null,
                   signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { accept: "text/event-stream", "cache-control": "no-cache" };
    if (position !== null) headers["last-event-id"] = String(position);
    return this.request("GET", path, { query, headers, signal });
  }

  /** Refresh the tokens unless another caller just did (a subscription the server closed when
   * its access token expired resumes with new ones). */
  async renewTokens(): Promise<void> {
    await this.renew(this.session.tokens);
  }

  /** Sign in (`POST /auth/login`); later requests carry the access token. */
  async signIn(username: string, password: string): Promise<Tokens> {
    const response = await this.request("POST", "/auth/login", {
      json: { username, password }, retry: false });
    const tokens = await decode<Tokens>(response);
    this.session.set(tokens);
    return tokens;
  }

  /** Refresh once for every request that found the tokens `seen` stale or refused (a refresh
   * token used twice ends the session, docs/auth.md). */
  private async renew(seen: Tokens | null): Promise<void> {
    while (this.renewing !== null) {
      await this.renewing.catch(() => undefined);
    }
    if (seen !== null && this.session.tokens === seen) {
      const running = this.refresh();
      this.renewing = running;
      try {
        await running;
      } finally {
        this.renewing = null;
      }
    }
  }

  /** New tokens for the old refresh token (`POST /auth/refresh`). */
  async refresh(): Promise<Tokens> {
    const current = this.session.tokens;
    if (current === null) throw new CharterError(401, "UNAUTHORIZED", "not signed in");
    let response: Response;
    try {
      response = await this.request("POST", "/auth/refresh", {
        json: { refresh_token: current.refresh_token }, retry: false });
    } catch (error) {
      this.session.tokens = null;
      throw error;
    }
    const tokens = await decode<Tokens>(response);
    this.session.set(tokens);
    return tokens;
  }

  /** End the session (`POST /auth/logout`). */
  async signOut(): Promise<void> {
    if (this.session.tokens === null) return;
    try {
      await this.request("POST", "/auth/logout", { retry: false });
    } finally {
      this.session.tokens = null;
    }
  }
}

// -- subscriptions (docs/realtime.md) ---------------------------------------------------------

/** `reset`: the server no longer holds the events since the position a subscription resumed
 * from; the current records follow (drop what you kept: they may have changed). */
export type EventType = "put" | "patch" | "delete" | "publish" | "reset";

interface EventBase<K> {
  /** The record's key. */
  id: K;
  /** When the change was made (ms since the epoch). */
  timestamp: number;
  /** Who made it. */
  user: string | null;
  /** A `delete` sent because the record stopped matching (or may no longer be read). */
  leaving?: boolean;
  /** The event's place in the server's log (a resume starts after it). */
  position: number | null;
}

/** One change of a subscription (docs/realtime.md): narrow on `type` for its `value` (the
 * record as a read shows it for `put` and `patch`, null for `delete`, what was published for
 * `publish`). */
export type RecordEvent<R, K = string> =
  | (EventBase<K> & { type: "put" | "patch"; value: R })
  | (EventBase<K> & { type: "delete"; value: null })
  | (EventBase<K> & { type: "publish"; value: unknown })
  | { type: "reset"; id: null; value: null; timestamp: number | null; user: null;
      leaving?: boolean; position: number | null };

/** What a table's `subscribe` takes beside the key. */
export interface SubscribeOptions<Q> {
  /** The records matching this query (a collection subscription; no `select`). */
  query?: Q;
  /** The records whose key starts with this. */
  prefix?: string;
  /** Resume after this position (a previous subscription's `position`). */
  after?: number;
  /** Do not send the current record(s) first. */
  omitCurrent?: boolean;
  /** Replay the events since this time (ms since the epoch) first. */
  startTime?: number;
  /** Replay the last N events first. */
  previousCount?: number;
  /** Milliseconds without a byte (the server sends a keep-alive every 15 s) before the
   * connection is taken for dead and resumed: 45 000 by default. */
  idleTimeout?: number;
}

interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

/** Server-Sent Events as the WHATWG format reads them: lines to messages. */
class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | null = null;

  feed(text: string): SseMessage[] {
    this.buffer += text;
    const out: SseMessage[] = [];
    for (;;) {
      const end = /\r\n|\r|\n/.exec(this.buffer);
      if (end === null) break;
      if (end[0] === "\r" && end.index === this.buffer.length - 1) break; // maybe \r\n, split
      const line = this.buffer.slice(0, end.index);
      this.buffer = this.buffer.slice(end.index + end[0].length);
      const message = this.line(line);
      if (message !== null) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      const message = { event: this.event, data: this.data.join("\n"), id: this.id };
      this.event = "";
      this.data = [];
      this.id = null;
      return message;
    }
    if (line.startsWith(":")) return null; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.id = value;
    return null;
  }
}

const FIRST_DELAY = 100;
const MAX_DELAY = 5_000;
const CLOSES = 3; // closes in a row without an event before giving up

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The events of a subscription, as an async iterable (`for await (const event of ...)`)
 * that resumes by itself: after a dropped connection, an `overflow` or a close when the
 * access token expired (the tokens are refreshed), it connects again from the last position
 * and gets exactly the events it missed (an event before that position is dropped). Waits,
 * with backoff, while the server cannot be reached.
 *
 * Throws `CharterError` when the server refuses it (401, 403, 404...), and with the code
 * `SUBSCRIPTION_CLOSED` when the server keeps closing it (the session ended). It connects at
 * `open()`, else when iterated first: events committed before then are not sent (the current
 * record is). `close()` (or leaving the loop) stops it; `position` is where a later one may
 * resume (`after`). Iterate it once. */
export class Subscription<R, K = string> implements AsyncIterable<RecordEvent<R, K>> {
  /** The last event's position (null before the first). */
  position: number | null;
  /** Connections made so far (1, plus one per resume). */
  connections = 0;
  private controller: AbortController | null = null;
  private opened: Response | null = null;
  private stopped = false;
  private readonly idleTimeout: number;
  /** Whether `position` resumes exactly: the current records sent first share one position,
   * so until a later event shows they are all in, a resume starts over (the current records
   * again, those already delivered unchanged not repeated). */
  private exact: boolean;
  private readonly delivered = new Set<string>();

  constructor(readonly transport: Transport, readonly path: string, readonly query: string,
              options: { after?: number; idleTimeout?: number; current?: boolean } = {}) {
    this.position = options.after ?? null;
    this.idleTimeout = options.idleTimeout ?? 45_000;
    this.exact = this.position !== null || options.current === false;
  }

  /** Connect now (else the first iteration does): events from then on are received. */
  async open(): Promise<this> {
    if (this.opened === null && this.connections === 0) this.opened = await this.connect();
    return this;
  }

  /** Stop: the connection is closed and the iteration ends. */
  close(): void {
    this.stopped = true;
    this.controller?.abort();
    this.opened = null;
  }

  private async connect(): Promise<Response> {
    const controller = new AbortController();
    this.controller = controller;
    const response = await this.transport.openEvents(
      this.path, this.query, this.exact ? this.position : null, controller.signal);
    this.connections += 1;
    return response;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RecordEvent<R, K>, void, undefined> {
    let delay = FIRST_DELAY;
    let closes = 0;
    try {
      while (!this.stopped) {
        let response: Response;
        try {
          response = this.opened ?? await this.connect();
        } catch (error) {
          if (error instanceof CharterError || this.stopped) throw error;
          await sleep(delay); // unreachable: try again
          delay = Math.min(delay * 2, MAX_DELAY);
          continue;
        }
        this.opened = null;
        let closed: string | null = null;
        let overflow = false;
        const controller = this.controller;
        const parser = new SseParser();
        const decoder = new TextDecoder();
        const reader = (response.body ?? new ReadableStream<Uint8Array>()).getReader();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const watch = (): void => {
          clearTimeout(timer);
          timer = setTimeout(() => controller?.abort(), this.idleTimeout);
        };
        try {
          watch();
          reading: for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            watch();
            for (const message of parser.feed(decoder.decode(value, { stream: true }))) {
              const at = message.id !== null && /^\d+$/.test(message.id) ? Number(message.id) : null;
              if (message.event === "overflow") { // left behind: resume from its position
                if (at !== null) this.position = at;
                overflow = true;
                break reading;
              }
              if (message.event === "close") {
                closed = closeReason(message.data);
                break reading;
              }
              if ((message.event !== "" && message.event !== "message") || !message.data) continue;
              if (at !== null && this.position !== null && at < this.position) continue; // had it
              if (!this.exact && at !== null && this.position !== null) {
                this.exact = at > this.position; // a live event: the current records are in
              }
              const event = decodeEvent<R, K>(message.data, response.status, at);
              if (!this.exact && event.type === "put") {
                const seen = JSON.stringify([event.id, event.timestamp]);
                if (this.delivered.has(seen)) continue;
                this.delivered.add(seen);
              }
              if (at !== null) this.position = at;
              closes = 0;
              delay = FIRST_DELAY;
              yield event;
            }
          }
        } catch (error) {
          if (error instanceof CharterError) throw error;
          // dropped (or idle too long): resume below
        } finally {
          clearTimeout(timer);
          controller?.abort();
          reader.releaseLock();
        }
        if (this.stopped) break;
        if (closed !== null) {
          closes += 1;
          if (closes >= CLOSES) throw new CharterError(401, "SUBSCRIPTION_CLOSED", closed);
          if (this.transport.session.tokens !== null) await this.transport.renewTokens();
          continue;
        }
        if (overflow) continue;
        await sleep(delay);
        delay = Math.min(delay * 2, MAX_DELAY);
      }
    } finally {
      this.stopped = true;
      this.controller?.abort();
    }
  }
}

function closeReason(data: string): string {
  try {
    const reason = (JSON.parse(data) as { reason?: unknown }).reason;
    if (typeof reason === "string") return reason;
  } catch {
    // not JSON: below
  }
  return data || "the server closed the subscription";
}

function decodeEvent<R, K>(data: string, status: number, position: number | null): RecordEvent<R, K> {
  let event: RecordEvent<R, K>;
  try {
    event = JSON.parse(data) as RecordEvent<R, K>;
  } catch (error) {
    throw new CharterError(status, "UNEXPECTED_RESPONSE", `an event is not JSON (${String(error)})`);
  }
  event.position = position;
  return event;
}

/** A table's subscription: its path and query string from the key and options. */
export function subscription<R, K, Q extends { toQueryString(): string; readonly selects: boolean }>(
  transport: Transport, table: string, key: K | null | undefined, options: SubscribeOptions<Q>,
): Subscription<R, K> {
  const { query, prefix } = options;
  if (query?.selects) throw new TypeError("a subscription receives records: its query has no select()");
  if (key !== null && key !== undefined && (query !== undefined || prefix !== undefined)) {
    throw new TypeError("a subscription to one record takes no query and no prefix");
  }
  let path = `/${table}/`;
  if (key !== null && key !== undefined) path = `/${table}/${pathSegment(key)}`;
  else if (prefix !== undefined) path = `/${table}/${pathSegment(prefix)}/`;
  const parts = query !== undefined ? [query.toQueryString()] : [];
  if (options.omitCurrent) parts.push("omitCurrent=true");
  if (options.startTime !== undefined) parts.push(`startTime=${Math.trunc(options.startTime)}`);
  if (options.previousCount !== undefined) {
    parts.push(`previousCount=${Math.trunc(options.previousCount)}`);
  }
  return new Subscription<R, K>(transport, path, parts.filter((p) => p).join("&"), {
    after: options.after, idleTimeout: options.idleTimeout, current: !options.omitCurrent });
}

// -- the encrypted RPC channel (docs/crypto.md, version 1) -------------------------------------

const SEALED = "application/charter-sealed";
const LABEL = new TextEncoder().encode("charter-channel-v1");
const X25519_SPKI = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03,
                                     0x21, 0x00]); // DER of an X25519 public key, before its 32 bytes

interface NodeKey {
  export(options: { format: "der"; type: "spki" }): Uint8Array;
}

interface NodeAead {
  setAAD(data: Uint8Array, options: { plaintextLength: number }): unknown;
  setAuthTag(tag: Uint8Array): unknown;
  getAuthTag(): Uint8Array;
  update(data: Uint8Array): Uint8Array;
  final(): Uint8Array;
}

/** The part of Node's `crypto` the channel uses (typed here: the package needs no Node types). */
interface NodeCrypto {
  generateKeyPairSync(type: "x25519"): { publicKey: NodeKey; privateKey: NodeKey };
  createPublicKey(options: { key: Uint8Array; format: "der"; type: "spki" }): NodeKey;
  diffieHellman(options: { privateKey: NodeKey; publicKey: NodeKey }): Uint8Array;
  hkdfSync(digest: "sha256", key: Uint8Array, salt: Uint8Array, info: Uint8Array,
           length: number): ArrayBuffer;
  createHash(algorithm: "sha256"): { update(data: Uint8Array): { digest(): Uint8Array } };
  randomBytes(size: number): Uint8Array;
  createCipheriv(algorithm: "chacha20-poly1305", key: Uint8Array, iv: Uint8Array,
                 options: { authTagLength: 16 }): NodeAead;
  createDecipheriv(algorithm: "chacha20-poly1305", key: Uint8Array, iv: Uint8Array,
                   options: { authTagLength: 16 }): NodeAead;
}

let nodeCrypto: Promise<NodeCrypto> | null = null;

function loadCrypto(): Promise<NodeCrypto> {
  const name = "node:crypto"; // (a variable: bundlers for browsers leave it alone)
  nodeCrypto ??= (import(name) as Promise<NodeCrypto>).catch(() => {
    throw new CharterError(0, "CHANNEL_UNAVAILABLE",
                           "the encrypted channel needs Node's crypto module (Node 18+)");
  });
  return nodeCrypto;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function counted(counter: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(counter));
  return out;
}

function base64url(data: Uint8Array): string {
  let text = "";
  for (const byte of data) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unbase64url(text: string): Uint8Array {
  const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(plain, (c) => c.charCodeAt(0));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function channelExpired(response: Response): Promise<boolean> {
  if (response.status !== 400 || (response.headers.get("content-type") ?? "").startsWith(SEALED)) {
    return false;
  }
  return (await response.clone().text()).includes("CHANNEL_EXPIRED");
}

/** One session of the channel: keys from an X25519 handshake, calls sealed with
 * ChaCha20-Poly1305 under a counter that only grows. */
class ChannelSession {
  counter = 0;

  private constructor(private readonly crypto: NodeCrypto, readonly session: Uint8Array,
                      private readonly toServer: Uint8Array, private readonly toClient: Uint8Array) {}

  static async open(fetcher: typeof fetch, baseUrl: string): Promise<ChannelSession> {
    const crypto = await loadCrypto();
    const pair = crypto.generateKeyPairSync("x25519");
    const publicKey = pair.publicKey.export({ format: "der", type: "spki" }).slice(-32);
    const nonce = new Uint8Array(crypto.randomBytes(32));
    const response = await fetcher(`${baseUrl}/rpc/_handshake`, {
      method: "POST", headers: JSON_HEADERS,
      body: JSON.stringify({ version: 1, public_key: base64url(publicKey), nonce: base64url(nonce) }),
    });
    if (response.status >= 400) throw await CharterError.fromResponse(response);
    const answer = await decode<{ version: number; session: string; public_key: string;
                                  nonce: string }>(response);
    const session = unbase64url(answer.session);
    const peer = unbase64url(answer.public_key);
    const peerNonce = unbase64url(answer.nonce);
    if (answer.version !== 1 || session.length !== 16 || peer.length !== 32) {
      throw new CharterError(response.status, "UNEXPECTED_RESPONSE",
                             "the channel's handshake answer is not version 1");
    }
    const secret = crypto.diffieHellman({
      privateKey: pair.privateKey,
      publicKey: crypto.createPublicKey({ key: concat(X25519_SPKI, peer), format: "der", type: "spki" }),
    });
    const transcript = new Uint8Array(crypto.createHash("sha256").update(
      concat(LABEL, Uint8Array.of(1), publicKey, nonce, peer, peerNonce, session)).digest());
    const key = (direction: string): Uint8Array => new Uint8Array(crypto.hkdfSync(
      "sha256", secret, transcript, concat(LABEL, new TextEncoder().encode(direction), transcript), 32));
    return new ChannelSession(crypto, session, key(" client->server "), key(" server->client "));
  }

  private parts(direction: number, counter: number, path: string): [Uint8Array, Uint8Array] {
    const direct = new Uint8Array(4);
    new DataView(direct.buffer).setUint32(0, direction);
    const count = counted(counter);
    return [concat(direct, count),
            concat(LABEL, Uint8Array.of(direction), this.session, count, new TextEncoder().encode(path))];
  }

  /** The next counter and the sealed call. */
  seal(path: string, body: Uint8Array): [number, Uint8Array] {
    this.counter += 1;
    const [nonce, associated] = this.parts(1, this.counter, path);
    const cipher = this.crypto.createCipheriv("chacha20-poly1305", this.toServer, nonce,
                                              { authTagLength: 16 });
    cipher.setAAD(associated, { plaintextLength: body.length });
    const sealed = concat(cipher.update(body), cipher.final(), cipher.getAuthTag());
    return [this.counter, concat(this.session, counted(this.counter), sealed)];
  }

  /** The call's own answer out of the sealed one (a plain refusal as it came). */
  async unseal(response: Response, path: string, counter: number): Promise<Response> {
    if ((response.headers.get("content-type") ?? "").split(";")[0] !== SEALED) return response;
    const frame = new Uint8Array(await response.arrayBuffer());
    if (frame.length < 42 || !equal(frame.slice(0, 16), this.session)
        || !equal(frame.slice(16, 24), counted(counter))) {
      throw new CharterError(502, "DECRYPTION_FAILED", "the answer is not this call's");
    }
    const [nonce, associated] = this.parts(2, counter, path);
    let plain: Uint8Array;
    try {
      const decipher = this.crypto.createDecipheriv("chacha20-poly1305", this.toClient, nonce,
                                                    { authTagLength: 16 });
      decipher.setAuthTag(frame.slice(-16));
      const sealed = frame.slice(24, -16);
      decipher.setAAD(associated, { plaintextLength: sealed.length });
      plain = concat(decipher.update(sealed), decipher.final());
    } catch {
      throw new CharterError(502, "DECRYPTION_FAILED", "the answer does not open");
    }
    const status = (plain[0]! << 8) | plain[1]!;
    return new Response(plain.slice(2) as BodyInit,
                        { status, headers: { "content-type": "application/json" } });
  }
}
