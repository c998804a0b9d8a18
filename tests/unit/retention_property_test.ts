/**
 * Property test of the retention planner: random device histories (mounts
 * ending in every state, restores that supersede, reactivations, sessions
 * removed by hand, writes outside a mount) pruned under random policies,
 * each prune checked against a brute-force oracle of the invariant. The
 * PRNG is seeded: a failure names its case and reproduces.
 */

import assert from "node:assert/strict";
import { checkChain, type PlanOptions, restorability } from "../../lib/plan.ts";
import {
  chainsOf,
  planRetention,
  type RetentionPolicy,
  sessionEndMs,
} from "../../lib/retention.ts";
import type { Session, SessionState } from "../../lib/store.ts";
import { storeName } from "../../lib/format.ts";
import { rng } from "../_store_writer.ts";
import { fakeSession, minuteNs } from "./_fake_sessions.ts";

const DEVICES = ["/dev/vdb", "/img/disk.img"];
const CASES = 3000;
const OPTION_SETS: PlanOptions[] = [
  {},
  { acceptGap: true },
  { allowOpen: true },
  { allowOpen: true, acceptGap: true },
];

/** The planner's verdict as a comparable string: the chain's ids, or the refusal. */
function verdict(store: readonly Session[], id: string, o: PlanOptions): string {
  try {
    const c = checkChain(store, id, o);
    return `ok ${c.chain.map((s) => s.id).join(",")} gaps ${c.gaps.length}`;
  } catch (e) {
    return `refused ${(e as { acceptable: boolean }).acceptable}`;
  }
}

type Pick = <T>(items: readonly T[]) => T;

/** A random history of one store, as the sessions it leaves. */
function history(rand: () => number, pick: Pick, live: Set<string>): Session[] {
  const store: Session[] = [];
  let minute = 0;
  for (const device of DEVICES) {
    let seq = 0;
    const steps = 1 + Math.floor(rand() * 12);
    for (let step = 0; step < steps; step++) {
      const r = rand();
      const own = store.filter((s) => s.idParts?.name === storeName(device));
      if (r < 0.1) {
        seq = 0; // deactivated and activated again
      } else if (r < 0.2 && own.length > 0) {
        // A restore of the device to a session the restorer accepts.
        const k = pick(own);
        const ok = restorability(store, k.id).kind;
        if (ok === "exact" || (ok === "inexact" && rand() < 0.5)) {
          for (const s of store) {
            if (s.meta?.device === device && s.meta.mountTimeNs > k.meta!.mountTimeNs) {
              s.superseded = { restoredTo: k.id, time: "" };
            }
          }
          seq = 0; // restore needs the device deactivated
        }
      } else if (r < 0.25 && own.length > 0) {
        store.splice(store.indexOf(pick(own)), 1); // removed by hand
      } else {
        const state = pick<SessionState>([
          "closed",
          "closed",
          "closed",
          "closed",
          "failed",
          "interrupted",
          "damaged",
          "incomplete",
        ]);
        store.push(fakeSession({
          device,
          seq: ++seq,
          minute: minute++,
          state,
          noMeta: (state === "damaged" || state === "incomplete") && rand() < 0.3,
          unmountedWritesBefore: rand() < 0.08 ? 1 + Math.floor(rand() * 5) : 0,
          bytes: 4096 * (1 + Math.floor(rand() * 8)),
          // Older modules' sessions ("flush") beside write-ahead ones.
          durability: rand() < 0.5 ? "write-ahead" : "flush",
        }));
      }
    }
    // Sometimes mounted now.
    if (rand() < 0.25) {
      const s = fakeSession({ device, seq: seq + 1, minute: minute++, state: "open" });
      store.push(s);
      live.add(s.id);
    }
  }
  // A session the module holds that meta.json calls closed (rare, but possible).
  if (rand() < 0.05 && store.length > 0) live.add(pick(store).id);
  return store;
}

function randomPolicy(rand: () => number): RetentionPolicy {
  const p: RetentionPolicy = {};
  const kind = rand();
  if (kind < 0.5 || rand() < 0.3) p.keep = Math.floor(rand() * 5);
  if (kind >= 0.5 && rand() < 0.7) p.olderThanMs = Math.floor(rand() * 30) * 60e3;
  if (kind >= 0.5 && (p.olderThanMs === undefined || rand() < 0.4)) {
    p.maxBytes = Math.floor(rand() * 80) * 4096;
  }
  if (p.keep === undefined && p.olderThanMs === undefined && p.maxBytes === undefined) p.keep = 1;
  return p;
}

/** The invariant, checked by brute force against the planner's own verdicts. */
function checkInvariant(
  before: readonly Session[],
  removed: readonly Session[],
  policy: RetentionPolicy,
  live: ReadonlySet<string>,
  now: number,
): void {
  const gone = new Set(removed.map((s) => s.id));
  const after = before.filter((s) => !gone.has(s.id));
  const held = (s: Session) => s.state === "open" || live.has(s.id);
  for (const s of removed) assert.ok(!held(s), `removed open or live ${s.id}`);

  // Every kept session: the same verdict and chain before and after, for
  // every way of asking (so no restore became inexact, refused, or newly
  // accepted).
  // (Only chains that lost a session can change: a verdict reads one chain.)
  const touched = new Set(removed.map((s) => s.idParts!.name));
  for (const s of after.filter((x) => touched.has(x.idParts!.name))) {
    for (const o of OPTION_SETS) {
      assert.equal(
        verdict(after, s.id, o),
        verdict(before, s.id, o),
        `${s.id} ${JSON.stringify(o)}`,
      );
    }
  }

  for (const chain of chainsOf(before)) {
    const points = chain.filter((s) =>
      !held(s) && restorability(before, s.id, { allowOpen: true }).kind !== "refused"
    );
    const keptPoints = points.filter((s) => !gone.has(s.id));
    const exact = points.some((s) =>
      restorability(before, s.id, { allowOpen: true }).kind === "exact"
    );
    // Without an exact restore point nothing goes: the newest kept state must be exact.
    if (!exact) assert.ok(chain.every((s) => !gone.has(s.id)), "removed without an exact point");
    const want = Math.max(1, policy.keep ?? 1);
    // The newest restore points stay, up to --keep (at least the newest).
    for (const s of points.slice(-want)) assert.ok(!gone.has(s.id), `newest point ${s.id} removed`);
    // Nothing stays in place of a removed restore point: no kept session is older.
    for (const r of points.filter((s) => gone.has(s.id))) {
      const older = chain.filter((s) => !gone.has(s.id) && chain.indexOf(s) < chain.indexOf(r));
      assert.deepEqual(older.map((s) => s.id), [], `kept older than removed point ${r.id}`);
    }
    // Without restore points nothing goes.
    if (points.length === 0) assert.ok(chain.every((s) => !gone.has(s.id)));
    // Removed sessions were selected by the policy.
    const out = chain.filter((s) => gone.has(s.id));
    if (policy.olderThanMs !== undefined && policy.maxBytes === undefined) {
      for (const s of out) assert.ok(sessionEndMs(s) < now - policy.olderThanMs, s.id);
    }
    if (policy.maxBytes !== undefined && policy.olderThanMs === undefined && out.length > 0) {
      const left = chain.filter((s) => !gone.has(s.id)).reduce((n, s) => n + s.datSize, 0);
      assert.ok(left + out[out.length - 1].datSize > policy.maxBytes, "removed too much");
    }
    // --keep alone removes everything below the kept points and held sessions.
    if (policy.olderThanMs === undefined && policy.maxBytes === undefined && exact) {
      const firstKept = chain.indexOf(points.slice(-want)[0]);
      const firstHeld = chain.findIndex(held);
      const stop = Math.min(firstKept, firstHeld < 0 ? chain.length : firstHeld);
      assert.deepEqual(out, chain.slice(0, stop));
    }
    assert.ok(keptPoints.length >= Math.min(want, points.length));
  }
}

Deno.test("retention property: random histories, restores and prunes keep every restore exact", () => {
  for (let c = 0; c < CASES; c++) {
    const rand = rng(0x18_0000 + c);
    const pick: Pick = (items) => items[Math.floor(rand() * items.length)];
    const live = new Set<string>();
    let store = history(rand, pick, live);
    // A few prunes in a row, each on what the last one left.
    for (let round = 0; round < 3; round++) {
      const policy = randomPolicy(rand);
      const now = minuteNs(Math.floor(rand() * 40)) / 1e6;
      const plan = planRetention(store, policy, { now, live });
      try {
        checkInvariant(store, plan.remove, policy, live, now);
      } catch (e) {
        throw new Error(`case ${c} round ${round} policy ${JSON.stringify(policy)}: ${e}`);
      }
      const gone = new Set(plan.remove.map((s) => s.id));
      assert.equal(plan.keep.length + plan.remove.length, store.length);
      store = store.filter((s) => !gone.has(s.id));
    }
  }
});
