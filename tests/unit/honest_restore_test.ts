/**
 * Honest restores (issue 17): what the reader makes of the blocks.map
 * header's WRITE_AHEAD and FAILED flags and of meta.json's `durability`, the
 * planner's verdict for each kind of session (closed, interrupted with and
 * without write-ahead, failed), and the retention planner's use of it.
 */

import assert from "node:assert/strict";
import { encodeMapHeader, encodeMeta, MAP_F_WRITE_AHEAD, parseMeta } from "../../lib/format.ts";
import { planRestore, restorability } from "../../lib/plan.ts";
import { planRetention } from "../../lib/retention.ts";
import { listSessions, type Session } from "../../lib/store.ts";
import {
  type History,
  type MountSpec,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeHistory,
} from "../_store_writer.ts";
import { fakeChain } from "./_fake_sessions.ts";
import { applyInMemory } from "./_restore_fixture.ts";

const SIZE = 256 * 1024;
const ENOSPC = 28;

/** Three mounts of 8 random writes each; `middle` sets the second one's end. */
async function store(
  middle: Omit<MountSpec, "writes">,
): Promise<{ root: string; ids: string[]; h: History; sessions: Session[] }> {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-honest-" });
  const rand = rng(17);
  const mounts: MountSpec[] = [{}, middle, {}].map((m) => ({
    ...m,
    writes: randomWrites(rand, SIZE, 8, 30000),
  }));
  const h = simulate(randomBytes(rand, SIZE), "/dev/vdb", mounts, { kind: "block" });
  const ids = await writeHistory(root, h);
  return { root, ids, h, sessions: await listSessions(root, { liveSessions: new Set() }) };
}

/** Rewrite a session's meta.json through `edit`. */
async function editMeta(dir: string, edit: (m: ReturnType<typeof parseMeta>) => void) {
  const m = parseMeta(await Deno.readFile(`${dir}/meta.json`));
  edit(m);
  await Deno.writeTextFile(`${dir}/meta.json`, encodeMeta(m));
}

Deno.test("reader: durability is write-ahead only when the header and meta.json both say so", async () => {
  const wa = await store({});
  assert.deepEqual(wa.sessions.map((s) => s.durability), [
    "write-ahead",
    "write-ahead",
    "write-ahead",
  ]);
  assert.equal(wa.sessions[1].header!.writeAhead, true);
  assert.equal(wa.sessions[1].meta!.durability, "write-ahead");

  const old = await store({ durability: "flush" });
  assert.equal(old.sessions[1].durability, "flush");
  assert.equal(old.sessions[1].header!.flags, 0);
  assert.equal(old.sessions[1].meta!.durability, null, "no field, as older modules write it");

  // The header claims write-ahead, meta.json does not: the weaker claim wins.
  const dir = wa.sessions[0].dir;
  await editMeta(dir, (m) => (m.durability = null));
  // meta.json claims write-ahead, the header does not.
  const dir2 = wa.sessions[2].dir;
  const map = await Deno.readFile(`${dir2}/blocks.map`);
  const h = wa.sessions[2].header!;
  map.set(encodeMapHeader({ ...h, flags: 0 }), 0);
  await Deno.writeFile(`${dir2}/blocks.map`, map);
  const s = await listSessions(wa.root, { liveSessions: new Set() });
  assert.deepEqual(s.map((x) => [x.state, x.durability]), [
    ["closed", "flush"],
    ["closed", "write-ahead"],
    ["closed", "flush"],
  ]);
  await Deno.remove(wa.root, { recursive: true });
  await Deno.remove(old.root, { recursive: true });
});

Deno.test("reader: a FAILED header makes the session failed whatever meta.json says", async () => {
  // The module failed it (ENOSPC) after 3 records, and meta.json's rewrite failed: still "open".
  const f = await store({ state: "open", headerFailed: { errno: ENOSPC }, savedRecords: 3 });
  const s = f.sessions[1];
  assert.equal(s.meta!.state, "open");
  assert.equal(s.state, "failed");
  assert.deepEqual([s.header!.failed, s.header!.failErrno, s.header!.failRecords], [
    true,
    ENOSPC,
    3,
  ]);
  assert.equal(s.records.count, 3);
  // The module still listing it (a mounted, failed session) does not make it open.
  const live = await listSessions(f.root, { liveSessions: new Set([s.id]) });
  assert.equal(live[1].state, "failed");
  assert.equal((await listSessions(f.root)).find((x) => x.id === s.id)!.state, "failed");
  // Even a meta.json that says closed.
  await editMeta(s.dir, (m) => {
    m.state = "closed";
    m.records = 3;
    m.bytes = s.dataBytes;
    m.endTimeNs = m.mountTimeNs + 1;
  });
  const closed = await listSessions(f.root, { liveSessions: new Set() });
  assert.equal(closed[1].state, "failed");
  await Deno.remove(f.root, { recursive: true });
});

Deno.test("reader: an unknown header flag bit damages the session, naming offset 36", async () => {
  const f = await store({});
  const dir = f.sessions[1].dir;
  const map = await Deno.readFile(`${dir}/blocks.map`);
  map.set(encodeMapHeader({ ...f.sessions[1].header!, flags: MAP_F_WRITE_AHEAD | 8 }), 0);
  await Deno.writeFile(`${dir}/blocks.map`, map);
  const s = (await listSessions(f.root, { liveSessions: new Set() }))[1];
  assert.equal(s.state, "damaged");
  assert.deepEqual(
    s.problems.map((p) => [p.file, p.offset, p.message]),
    [["blocks.map", 36, "unknown flags 0x00000008"]],
  );
  await Deno.remove(f.root, { recursive: true });
});

Deno.test("restorability: closed, interrupted with and without write-ahead, failed", async () => {
  const cases: Array<[string, Omit<MountSpec, "writes">, string, string | null]> = [
    ["closed", {}, "exact", null],
    ["interrupted, write-ahead", { state: "open" }, "exact", null],
    ["interrupted, flush", { state: "open", durability: "flush" }, "inexact", "interrupted"],
    ["failed (meta.json)", { state: "failed" }, "inexact", "failed"],
    [
      "failed (header only)",
      { state: "open", headerFailed: { errno: ENOSPC } },
      "inexact",
      "failed",
    ],
  ];
  for (const [name, middle, kind, gap] of cases) {
    const f = await store(middle);
    for (const target of [0, 1]) {
      const r = restorability(f.sessions, f.ids[target]);
      assert.equal(r.kind, kind, `${name}, before session ${target}`);
      assert.equal(r.error?.code ?? null, gap, name);
      // Without acceptGap the planner refuses exactly when it is not exact.
      if (kind === "exact") {
        const plan = planRestore(f.sessions, f.ids[target]);
        assert.deepEqual(plan.gaps, []);
        assert.deepEqual(await applyInMemory(plan, f.h.final), f.h.before[target], name);
      } else {
        assert.throws(() => planRestore(f.sessions, f.ids[target]), /would not be exact/);
        const plan = planRestore(f.sessions, f.ids[target], { acceptGap: true });
        assert.deepEqual(plan.gaps.map((g) => [g.code, g.session]), [[gap, f.ids[1]]]);
      }
    }
    // The session after it is untouched by its fate.
    assert.equal(restorability(f.sessions, f.ids[2]).kind, "exact", name);
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("restorability: a write-ahead crash's torn tail is exact; a failure really is not", async () => {
  // Cut by a crash while a record was being written: the write it belongs to
  // never reached the device (write-ahead), so the state is exact.
  const wa = await store({ state: "open" });
  const map = `${wa.sessions[1].dir}/blocks.map`;
  const b = await Deno.readFile(map);
  await Deno.writeFile(map, new Uint8Array([...b, ...b.subarray(64, 84)]));
  const s = await listSessions(wa.root, { liveSessions: new Set() });
  assert.equal(s[1].state, "interrupted");
  assert.equal(s[1].tail?.offset, b.length);
  const plan = planRestore(s, wa.ids[0]);
  assert.deepEqual(await applyInMemory(plan, wa.h.final), wa.h.before[0]);
  await Deno.remove(wa.root, { recursive: true });

  // Failed after 2 of its records: the writes after it reached the device
  // unsaved. Accepted, the result is a mix, not the pre-mount state.
  const f = await store({ state: "open", headerFailed: { errno: ENOSPC }, savedRecords: 2 });
  const e = restorability(f.sessions, f.ids[1]).error!;
  assert.match(
    e.message,
    /failed \(No space left on device \(ENOSPC\)\), after 2 durable record\(s\): writes to the device after the failure were not saved/,
  );
  const mixed = await applyInMemory(
    planRestore(f.sessions, f.ids[1], { acceptGap: true }),
    f.h.final,
  );
  assert.notDeepEqual(mixed, f.h.before[1]);
  await Deno.remove(f.root, { recursive: true });
});

Deno.test("retention: a failed or crashed-without-write-ahead newest session is no restore point to keep", async () => {
  const decide = (chain: Session[]) => {
    const p = planRetention(chain, { keep: 1 }, { live: new Set() });
    return {
      remove: p.remove.map((s) => chain.indexOf(s)),
      keep: p.keep.map((k) => `${chain.indexOf(k.session)}:${k.reason}`),
    };
  };
  // Every restore point's chain holds the failed session: none is exact, nothing goes.
  const failed = decide(fakeChain("/dev/vdb", ["closed", "closed", "failed"]));
  assert.deepEqual(failed, { remove: [], keep: ["0:inexact", "1:inexact", "2:inexact"] });
  const flush = decide(fakeChain("/dev/vdb", ["closed", "closed", "interrupted"], 0, "flush"));
  assert.deepEqual(flush.remove, []);
  // A write-ahead crash is an exact restore point, the newest.
  const wa = decide(fakeChain("/dev/vdb", ["closed", "closed", "interrupted"]));
  assert.deepEqual(wa, { remove: [0, 1], keep: ["2:newest"] });
  // A closed session after the failure is the newest exact one: the rest can go.
  const after = decide(fakeChain("/dev/vdb", ["closed", "failed", "closed"]));
  assert.deepEqual(after, { remove: [0, 1], keep: ["2:newest"] });

  // From a real store: a FAILED header under a meta.json that says open
  // (read without the module, so "interrupted" if the header were ignored).
  const f = await store({ state: "open", headerFailed: { errno: ENOSPC } });
  const lastFailed = f.sessions.slice(0, 2);
  assert.equal(lastFailed[1].state, "failed");
  assert.deepEqual(decide(lastFailed).remove, []);
  assert.deepEqual(decide(f.sessions), { remove: [0, 1], keep: ["2:newest"] });
  await Deno.remove(f.root, { recursive: true });
});
