// The TypeScript client generated from tests/client_app.py with `encrypted: true`, compiled
// with `tsc --strict` and run with `node --test` against a live server by
// tests/test_client_channel.py (CHARTER_URL, CHARTER_PASSWORD): RPC calls go sealed (the
// plaintext never on the wire), answer as plain calls do (errors included), and a replayed
// call is refused.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CharterError, Client } from "./gadgets/index.js";

const url = process.env.CHARTER_URL ?? "http://127.0.0.1:8000";
const password = process.env.CHARTER_PASSWORD ?? "";
const SEALED = "application/charter-sealed";

test("sealed RPC calls round-trip, and a replayed one is refused", async () => {
  const sent: Array<{ url: string; headers: Record<string, string>; body: Uint8Array | null }> = [];
  const recording: typeof fetch = (input, init) => {
    const body = init?.body instanceof Uint8Array ? init.body
      : typeof init?.body === "string" ? new TextEncoder().encode(init.body) : null;
    sent.push({ url: String(input), headers: { ...(init?.headers as Record<string, string>) }, body });
    return fetch(input, init);
  };
  const client = new Client(url, { fetch: recording, encrypted: true });
  await client.signIn("admin", password);
  await client.Gadget.put("safe", { name: "Safe", price: 30 });
  const priced = await client.rpc.quote("safe", { qty: 12 });
  assert.deepEqual([priced.total, priced.note], [360, "bulk"]);
  assert.deepEqual(await client.rpc.tags(["ab", "c"]), { ab: 2, c: 1 });
  try {
    await client.rpc.quote("no-such-gadget"); // the call's own error, sealed and opened
    assert.fail("no 404");
  } catch (error) {
    assert.ok(error instanceof CharterError, String(error));
    assert.deepEqual([error.status, error.code], [404, "NOT_FOUND"]);
  }
  const together = await Promise.all([1, 2, 3].map((n) => client.rpc.tags([String(n)])));
  assert.deepEqual(together, [{ 1: 1 }, { 2: 1 }, { 3: 1 }]); // queued on one channel

  assert.equal(sent.filter((r) => r.url.endsWith("/rpc/_handshake")).length, 1);
  const calls = sent.filter((r) => r.url.endsWith("/rpc/quote"));
  assert.ok(calls.length === 2 && calls.every((r) => r.headers["content-type"] === SEALED));
  const text = (b: Uint8Array | null): string => new TextDecoder("latin1").decode(b ?? new Uint8Array());
  assert.ok(calls.every((r) => !text(r.body).includes("safe"))); // never in the clear
  const plain = sent.find((r) => r.url.endsWith("/Gadget/safe"));
  assert.equal(plain?.headers["content-type"], "application/json"); // only RPC calls are sealed

  const first = calls[0]!;
  const replayed = await fetch(first.url, { method: "POST", headers: first.headers,
                                            body: first.body as BodyInit });
  assert.equal(replayed.status, 400);
  assert.match(await replayed.text(), /CHANNEL_REPLAY/);
});
