// Subscriptions of the TypeScript client generated from tests/client_app.py, compiled with
// `tsc --strict` and run with `node --test` by tests/test_client_subscribe.py against a live
// server, read through a proxy that cuts every event stream after two events (CHARTER_URL,
// CHARTER_PROXY_URL, CHARTER_PASSWORD): each event arrives typed, exactly once, in order.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, type Gadget, type RecordEvent } from "./gadgets/index.js";

const url = process.env.CHARTER_URL ?? "http://127.0.0.1:8000";
const proxy = process.env.CHARTER_PROXY_URL ?? url;
const password = process.env.CHARTER_PASSWORD ?? "";

test("a record's events arrive typed, once each, across dropped connections", async () => {
  const writer = new Client(url);
  const reader = new Client(proxy);
  await writer.signIn("admin", password);
  await reader.signIn("admin", password);
  await writer.Gadget.put("sled", { name: "Sled", price: 40, stock: 0 });

  const events: Array<RecordEvent<Gadget>> = [];
  const stocks: number[] = [];
  let writing: Promise<void> | null = null;
  const subscription = reader.Gadget.subscribe("sled");
  for await (const event of subscription) {
    events.push(event);
    if (event.type === "put" || event.type === "patch") {
      const gadget: Gadget = event.value; // narrowed: the record
      stocks.push(gadget.stock);
      if (gadget.stock === 7) break;
    }
    if (writing === null) { // the current record came: now the writes
      writing = (async () => {
        for (let n = 1; n <= 7; n++) await writer.Gadget.patch("sled", { stock: n });
      })();
    }
  }
  await writing;
  assert.deepEqual(events.map((e) => e.type), ["put", "patch", "patch", "patch", "patch",
                                               "patch", "patch", "patch"]);
  assert.deepEqual(stocks, [0, 1, 2, 3, 4, 5, 6, 7]);
  const positions = events.map((e) => e.position ?? -1);
  assert.ok(positions.every((p, i) => p > 0 && (i === 0 || p > positions[i - 1]!)), String(positions));
  assert.ok(events.every((e) => e.id === "sled"));
  assert.ok(subscription.connections >= 4, String(subscription.connections)); // cut every 2

  // resuming later from a position: exactly what came after it
  await writer.Gadget.patch("sled", { stock: 8 });
  const later = reader.Gadget.subscribe("sled", { after: subscription.position ?? 0 });
  for await (const event of later) {
    assert.equal(event.type, "patch");
    if (event.type === "patch") assert.equal(event.value.stock, 8);
    break;
  }
});

test("the table's events: creates, deletes and a query's leaving record", async () => {
  const writer = new Client(url);
  const reader = new Client(proxy);
  await writer.signIn("admin", password);
  await reader.signIn("admin", password);
  // (read while the writes go: events fetch received but not yet read are lost with the
  // connection; resuming from a position gets them again, but before the first event there is
  // none: docs/clients.md)
  const table = await reader.Gadget.subscribe(null, { omitCurrent: true }).open();
  const writing = (async () => {
    await writer.Gadget.put("t1", { name: "T1", price: 1 });
    await writer.Gadget.put("t2", { name: "T2", price: 2 });
    await writer.Gadget.delete("t1");
    await writer.Gadget.put("t3", { name: "T3", price: 3 });
  })();
  const seen: string[] = [];
  for await (const event of table) {
    seen.push(`${event.type} ${String(event.id)}`);
    if (event.id === "t3") break;
  }
  await writing;
  assert.deepEqual(seen, ["put t1", "put t2", "delete t1", "put t3"]);

  const toys = reader.Gadget.query().where("kind", "eq", "toy");
  const matching = await reader.Gadget.subscribe(null, { query: toys, omitCurrent: true }).open();
  const changing = (async () => {
    await writer.Gadget.put("top", { name: "Top", price: 3, kind: "toy" });
    await writer.Gadget.patch("top", { kind: "tool" });
  })();
  const got: string[] = [];
  for await (const event of matching) {
    got.push(`${event.type} ${String(event.id)} ${String(event.leaving ?? false)}`);
    if (got.length === 2) break;
  }
  await changing;
  assert.deepEqual(got, ["put top false", "delete top true"]);
});
