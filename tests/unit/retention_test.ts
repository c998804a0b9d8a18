import assert from "node:assert/strict";
import { planRetention, type RetentionPolicy } from "../../lib/retention.ts";
import type { Session, SessionState } from "../../lib/store.ts";
import { fakeChain, fakeSession, minuteNs } from "./_fake_sessions.ts";

const DEV = "/dev/vdb";

/** The plan as "index:reason" strings of one chain, and the removed indices. */
function decide(
  chain: Session[],
  policy: RetentionPolicy,
  options: Parameters<typeof planRetention>[2] = { live: new Set() },
) {
  const p = planRetention(chain, policy, options);
  const idx = (s: Session) => chain.indexOf(s);
  return {
    remove: p.remove.map(idx),
    keep: p.keep.map((k) => `${idx(k.session)}:${k.reason}`),
    details: p.keep.map((k) => k.detail),
  };
}

function superseded(states: SessionState[], restoredTo: number): Session[] {
  const chain = fakeChain(DEV, states);
  return chain.map((s, i) =>
    i > restoredTo ? { ...s, superseded: { restoredTo: chain[restoredTo].id, time: "" } } : s
  );
}

Deno.test("retention: after a restore to S1, --keep 2 keeps S1 and what its restore reads", () => {
  // The bug of issue 18: sessions 2-5 are superseded, so S1 is the only restore point.
  const chain = superseded(["closed", "closed", "closed", "closed", "closed"], 0);
  const p = decide(chain, { keep: 2 });
  assert.deepEqual(p.remove, []);
  assert.deepEqual(p.keep, ["0:newest", "1:needed", "2:needed", "3:needed", "4:needed"]);
  assert.match(p.details[1], new RegExp(`restore to ${chain[0].id} reads it`));
  // With an older restore point, --keep 1 removes only that one.
  const longer = superseded(["closed", "closed", "closed", "closed"], 1);
  assert.deepEqual(decide(longer, { keep: 1 }).remove, [0]);
  assert.deepEqual(decide(longer, { keep: 2 }).remove, []);
});

Deno.test("retention: an interrupted or failed session no longer pins newer ones", () => {
  const interrupted = fakeChain(DEV, ["closed", "interrupted", "closed", "closed", "closed"]);
  const p = decide(interrupted, { keep: 1 });
  assert.deepEqual(p.remove, [0, 1, 2, 3]);
  assert.deepEqual(p.keep, ["4:newest"]);
  const failed = fakeChain(DEV, ["closed", "closed", "failed", "closed", "closed"]);
  assert.deepEqual(decide(failed, { keep: 2 }).remove, [0, 1, 2]);
  // Fewer exact restore points than asked for: inexact ones (with --accept-gap) fill up.
  const few = fakeChain(DEV, ["closed", "closed", "failed", "closed"]);
  const q = decide(few, { keep: 3 });
  assert.deepEqual(q.remove, [0]);
  assert.deepEqual(q.keep, ["1:keep", "2:keep", "3:newest"]);
});

Deno.test("retention: a device without any restore point keeps everything", () => {
  const chain = fakeChain(DEV, ["closed", "closed", "damaged"]);
  const p = decide(chain, { keep: 1 });
  assert.deepEqual(p.remove, []);
  assert.deepEqual(p.keep, ["0:unrestorable", "1:unrestorable", "2:unrestorable"]);
  // A newer restore point frees them.
  const later = [...chain, fakeSession({ device: DEV, seq: 4, minute: 3, state: "closed" })];
  assert.deepEqual(decide(later, { keep: 1 }).remove, [0, 1, 2]);
});

Deno.test("retention: open and live sessions stay, and so does the history a mount needs", () => {
  const chain = fakeChain(DEV, ["closed", "closed", "open"]);
  assert.deepEqual(decide(chain, { keep: 0 }, { live: new Set([chain[2].id]) }), {
    remove: [0],
    keep: ["1:newest", "2:open"],
    details: ["the newest restore point of its device", "still open (mounted)"],
  });
  // meta.json says closed, the module says live: kept, and nothing newer goes.
  const closed = fakeChain(DEV, ["closed", "closed", "closed", "closed"]);
  const p = decide(closed, { keep: 1 }, { live: new Set([closed[1].id]) });
  assert.deepEqual(p.remove, [0]);
  assert.deepEqual(p.keep, ["1:live", "2:order", "3:newest"]);
});

Deno.test("retention: --older-than and --max-size select oldest first, --keep is a floor", () => {
  const chain = fakeChain(DEV, ["closed", "closed", "closed", "closed", "closed"]);
  const now = minuteNs(10) / 1e6;
  // Sessions end 30 s after their minute; older than 7 min: sessions 0, 1, 2.
  const age = { olderThanMs: 7 * 60e3 };
  assert.deepEqual(decide(chain, age, { now, live: new Set() }).remove, [0, 1, 2]);
  const floor = decide(chain, { ...age, keep: 3 }, { now, live: new Set() });
  assert.deepEqual(floor.remove, [0, 1]);
  assert.deepEqual(floor.keep, ["2:keep", "3:keep", "4:newest"]);
  // 5 × 4096 bytes, at most 10000: remove until under.
  const size = decide(chain, { maxBytes: 10000 }, { live: new Set() });
  assert.deepEqual(size.remove, [0, 1, 2]);
  assert.deepEqual(size.keep, ["3:policy", "4:newest"]);
  assert.match(size.details[0], /within --max-size/);
  // Either selector selects: a young store that is too big still shrinks.
  const both = decide(chain, { maxBytes: 3 * 4096, olderThanMs: 60 * 60e3 }, {
    now,
    live: new Set(),
  });
  assert.deepEqual(both.remove, [0, 1]);
  // Sizes come from the caller: 4096 + 1 + 3 × 4096 bytes, at most 8192.
  const bytes = new Map(chain.map((s, i) => [s.id, i === 1 ? 1 : 4096]));
  const sized = planRetention(chain, { maxBytes: 8192 }, {
    live: new Set(),
    bytesOf: (s) => bytes.get(s.id)!,
  });
  assert.deepEqual(sized.remove.map((s) => chain.indexOf(s)), [0, 1, 2]);
});

Deno.test("retention: chains are decided per device; `only` limits to one", () => {
  const a = fakeChain(DEV, ["closed", "closed"]);
  const b = fakeChain("/img/b.img", ["closed", "closed", "closed"], 100);
  const all = [...a, ...b];
  assert.deepEqual(planRetention(all, { keep: 1 }, { live: new Set() }).remove, [a[0], b[0], b[1]]);
  const p = planRetention(all, { keep: 1 }, { live: new Set() }, new Set(b.map((s) => s.id)));
  assert.deepEqual(p.remove, [b[0], b[1]]);
  assert.deepEqual(p.keep.map((k) => k.session), [b[2]]);
});
