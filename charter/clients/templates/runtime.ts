// The fixed part of every generated TypeScript client: the query builder, the error, and the
// transport with sign-in. `charter gen client --lang ts` copies this file as `runtime.ts` into
// the package it writes, so the client depends on nothing but `fetch` (browsers, Node 18+,
// Deno, Bun). Python never reads it; the TypeScript tests compile it with `tsc --strict`.
//
// Extension point: `Transport.request` is the one place a request is sent. The encrypted RPC
// channel (SPEC section 11) will seal RPC bodies there; subscriptions are not built yet.

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
}

/** How a client sends requests. */
export interface TransportOptions {
  /** A `fetch` of your own (by default the global one). */
  fetch?: typeof fetch;
  /** Sent with every request. */
  headers?: Record<string, string>;
  /** Milliseconds before a request is abandoned (30 000 by default; 0: never). */
  timeout?: number;
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

  constructor(baseUrl: string, options: TransportOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.fetcher = options.fetch ?? ((input, init) => fetch(input, init));
    this.headers = { ...(options.headers ?? {}) };
    this.timeout = options.timeout ?? 30_000;
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
    if (this.timeout > 0) init.signal = AbortSignal.timeout(this.timeout);
    const response = await this.fetcher(url, init);
    const resendable = !(options.bytes instanceof ReadableStream); // a stream is read once
    if (response.status === 401 && retry && used !== null && resendable) {
      await response.body?.cancel();
      await this.renew(used);
      return this.request(method, path, { ...options, retry: false });
    }
    if (response.status >= 400) throw await CharterError.fromResponse(response);
    return response;
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
