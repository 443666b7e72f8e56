// A program using the TypeScript client generated from tests/client_app.py: compiled with
// `tsc --strict` and run with `node --test` against a live server by
// tests/test_client_typescript.py (CHARTER_URL, CHARTER_PASSWORD in the environment).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type BrandCreate, CharterError, Client, type Gadget, type GadgetCreate, type GadgetPatch,
  type Priced, type Quote,
} from "./gadgets/index.js";

const url = process.env.CHARTER_URL ?? "http://127.0.0.1:8000";
const password = process.env.CHARTER_PASSWORD ?? "";

async function refused(call: Promise<unknown>, status: number, code: string): Promise<CharterError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof CharterError, String(error));
    assert.deepEqual([error.status, error.code], [status, code], error.message);
    assert.equal(error.envelope.status, status);
    return error;
  }
  throw new assert.AssertionError({ message: `no ${status}` });
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text();
}

test("the client drives the app", async () => {
  const refreshes: string[] = [];
  const counting: typeof fetch = (input, init) => {
    if (String(input).endsWith("/auth/refresh")) refreshes.push(String(input));
    return fetch(input, init);
  };
  const client = new Client(url, { fetch: counting });
  // not signed in: the anonymous role may not read
  await refused(client.Gadget.list(), 401, "UNAUTHORIZED");
  const tokens = await client.signIn("admin", password);
  assert.equal(tokens.token_type, "bearer");

  const acme: BrandCreate = { id: "acme", name: "Acme" };
  assert.equal((await client.Brand.create(acme)).name, "Acme");
  const input: GadgetCreate = { name: "Anvil", price: 25, tags: ["heavy"], brand_id: "acme", cost: 9.5 };
  const anvil: Gadget = await client.Gadget.create(input);
  assert.ok(anvil.id);
  assert.equal(anvil.stock, 0);
  assert.equal(anvil.owner, null);
  assert.ok(!("cost" in anvil)); // input-only: never returned
  let kite = await client.Gadget.put("kite", {
    name: "Kite", price: 12.5, kind: "toy", made: "2026-01-01T10:00:00+00:00" });
  assert.deepEqual([kite.id, kite.kind], ["kite", "toy"]);
  const change: GadgetPatch = { stock: 3 };
  kite = await client.Gadget.patch("kite", change);
  assert.deepEqual([kite.stock, kite.price], [3, 12.5]);
  assert.deepEqual((await client.Gadget.get(anvil.id)).tags, ["heavy"]);

  const query = client.Gadget.query().where("price", "gt", 10).sort("-price").limit(10);
  assert.equal(query.toQueryString(), "price=gt=number:10&sort(-price)&limit(10)");
  assert.deepEqual((await client.Gadget.list(query)).map((g) => g.name), ["Anvil", "Kite"]);
  const toys = client.Gadget.query().where("kind", "eq", "toy").where("stock", "ge", 1);
  assert.deepEqual((await client.Gadget.list(toys)).map((g) => g.id), ["kite"]);
  const either = client.Gadget.query();
  either.anyOf(either.cond("name", "sw", "An"), either.cond("tags", "ct", "none"));
  assert.deepEqual((await client.Gadget.list(either)).map((g) => g.name), ["Anvil"]);
  const names = client.Gadget.query().select("name").sort("name");
  assert.deepEqual(await client.Gadget.values(names), ["Anvil", "Kite"]);
  const between = client.Gadget.query().where("price", "bt", [12, 13]);
  assert.deepEqual((await client.Gadget.list(between)).map((g) => g.id), ["kite"]);

  const made = client.Gadget.query().where("made", "gt", new Date(Date.UTC(2025, 0, 1)));
  assert.deepEqual((await client.Gadget.list(made)).map((g) => g.id), ["kite"]);
  const madeText = client.Gadget.query().where("made", "lt", "2026-01-01T09:00:00+00:00");
  assert.deepEqual(await client.Gadget.list(madeText), []);

  assert.equal(await client.Gadget.label("kite"), "Kite (12.5)");
  assert.equal(await client.Gadget.discount(10, { kind: "toy" }), 1);
  const priced: Priced = await client.rpc.quote("kite", { qty: 10 });
  assert.equal(priced.note, "bulk");
  assert.ok(Math.abs(priced.total - 112.5) < 1e-9);
  const { tags } = client.rpc; // functions, usable on their own
  assert.deepEqual(await tags(["ab", "c"]), { ab: 2, c: 1 });
  const basket: Quote = { gadget_id: anvil.id, qty: 2 };
  assert.ok((await client.routes.checkout(basket)).total > 0);
  assert.deepEqual(await client.routes.greet("ann", 2), {
    greeting: "hello ann hello ann" });
  const created = await client.routes.newBrand({ payload: { id: "zeta", name: "Zeta" } });
  assert.equal((created as { name: string }).name, "Zeta");
  assert.equal((await client.Counter.create({ id: 7, value: 1 })).id, 7);
  assert.equal(await client.Blob.size(new TextEncoder().encode("x".repeat(1000))), 1000);
  const streamed = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("abc"));
      controller.enqueue(new TextEncoder().encode("de"));
      controller.close();
    },
  });
  assert.equal(await client.Blob.size(streamed), 5); // a stream, sent as it is read
  assert.equal(await text(await client.Blob.count(3)), "0\n1\n2\n");

  const missing = await refused(client.Gadget.get("nope"), 404, "NOT_FOUND");
  assert.equal(missing.envelope.code, "NOT_FOUND");
  const invalid = await refused(client.Gadget.create({ name: "", price: -1 }), 422,
                                "INVALID_PROPERTIES");
  assert.ok(Array.isArray(invalid.details) && invalid.details.length > 0);
  await refused(client.rpc.quote("missing"), 404, "NOT_FOUND");

  // an access token refused: refreshed, the request repeated
  assert.ok(client.session.tokens !== null);
  client.session.tokens.access_token = "not-a-token";
  assert.equal((await client.Gadget.get("kite")).name, "Kite");
  // about to expire: renewed before the request
  const before = client.session.tokens;
  client.session.expiresAt = 0;
  assert.equal((await client.Gadget.get("kite")).name, "Kite");
  assert.ok(client.session.tokens !== null && client.session.tokens !== before);
  // refused at once by many requests: refreshed once, not five times (a refresh token used
  // twice ends the session)
  const current = client.session.tokens;
  assert.ok(current !== null);
  refreshes.length = 0;
  current.access_token = "not-a-token";
  const labels = await Promise.all([1, 2, 3, 4, 5].map(() => client.Gadget.label("kite")));
  assert.deepEqual(labels, Array(5).fill("Kite (11.25)"));
  assert.ok(client.session.tokens !== null && client.session.tokens !== current);
  assert.equal(refreshes.length, 1);

  await client.Gadget.delete("kite");
  await refused(client.Gadget.get("kite"), 404, "NOT_FOUND");
  await client.signOut();
  assert.equal(client.session.tokens, null);
  await refused(client.Gadget.list(), 401, "UNAUTHORIZED");
});
