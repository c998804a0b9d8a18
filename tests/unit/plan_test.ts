import assert from "node:assert/strict";
import { RestoreError } from "../../lib/errors.ts";
import { encodeMeta, parseMeta } from "../../lib/format.ts";
import { type Plan, planRestore, restorability } from "../../lib/plan.ts";
import { listSessions } from "../../lib/store.ts";
import { applyInMemory } from "./_restore_fixture.ts";
import {
  type History,
  type MountSpec,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeHistory,
  writeSession,
} from "../_store_writer.ts";

function checkShape(plan: Plan): void {
  let end = -1;
  for (const p of plan.pieces) {
    assert.ok(p.devOffset >= end, "pieces sorted and disjoint");
    assert.ok(p.length > 0);
    end = p.devOffset + p.length;
  }
  assert.ok(end <= plan.deviceSize);
  let extEnd = -1;
  for (const e of plan.extents) {
    assert.ok(e.devOffset > extEnd, "extents coalesced: never adjacent");
    let pos = e.devOffset;
    for (let i = e.firstPiece; i < e.firstPiece + e.pieceCount; i++) {
      assert.equal(plan.pieces[i].devOffset, pos);
      pos += plan.pieces[i].length;
    }
    assert.equal(pos, e.devOffset + e.length);
    extEnd = pos;
  }
  assert.equal(plan.bytes, plan.pieces.reduce((n, p) => n + p.length, 0));
  assert.equal(plan.bytes, plan.usage.reduce((n, u) => n + u.bytes, 0));
}

async function build(
  mounts: MountSpec[],
  seed = 1,
  size = 128 * 1024,
  options: { chunkSize?: number; device?: string } = {},
): Promise<{ root: string; ids: string[]; h: History }> {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-plan-" });
  const rand = rng(seed);
  const h = simulate(randomBytes(rand, size), options.device ?? "/dev/vdb", mounts, {
    chunkSize: options.chunkSize,
    kind: "block",
  });
  return { root, ids: await writeHistory(root, h), h };
}

function refuses(fn: () => unknown, code: string, re?: RegExp): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof RestoreError, String(e));
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

Deno.test("plan: the chain rule takes each chunk from the earliest session that saved it", async () => {
  const w = (offset: number, fill: number, len = 4096) => ({
    offset,
    data: new Uint8Array(len).fill(fill),
  });
  // Session 0 changes chunk 1; session 1 changes chunks 1 and 3; session 2 chunk 3 and 4.
  const { root, ids, h } = await build([
    { writes: [w(4096, 0xa1)] },
    { writes: [w(4096, 0xb1), w(3 * 4096, 0xb3)] },
    { writes: [w(3 * 4096, 0xc3), w(4 * 4096, 0xc4)] },
  ]);
  const sessions = await listSessions(root, { liveSessions: new Set() });
  for (let k = 0; k < 3; k++) {
    const plan = planRestore(sessions, ids[k]);
    checkShape(plan);
    assert.deepEqual(plan.sessions.map((s) => s.id), ids.slice(k));
    assert.deepEqual(await applyInMemory(plan, h.final), h.before[k]);
  }
  const p0 = planRestore(sessions, ids[0]);
  // Chunk 1 from session 0, chunk 3 from session 1, chunk 4 from session 2;
  // chunks 3 and 4 are adjacent, so one extent covers them.
  assert.deepEqual(
    p0.pieces.map((p) => [p.devOffset / 4096, p.length / 4096, p.session]),
    [[1, 1, 0], [3, 1, 1], [4, 1, 2]],
  );
  assert.deepEqual(p0.extents.map((e) => [e.devOffset / 4096, e.length / 4096]), [[1, 1], [3, 2]]);
  assert.equal(p0.chunks, 3);
  assert.deepEqual(p0.usage.map((u) => u.bytes), [4096, 4096, 4096]);
  assert.deepEqual(p0.warnings, []);
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: random histories restore every pre-mount state exactly", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rand = rng(seed * 7919);
    const size = (16 + Math.floor(rand() * 48)) * 8192;
    const chunkSize = rand() < 0.3 ? 8192 : 4096;
    const mounts: MountSpec[] = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => ({
      writes: randomWrites(rand, size, Math.floor(rand() * 12), 40000),
    }));
    const { root, ids, h } = await build(mounts, seed, size, { chunkSize });
    const sessions = await listSessions(root, { liveSessions: new Set() });
    for (let k = 0; k < ids.length; k++) {
      const plan = planRestore(sessions, ids[k], { device: "/dev/vdb" });
      checkShape(plan);
      assert.deepEqual(await applyInMemory(plan, h.final), h.before[k], `seed ${seed} k ${k}`);
      // The plan does not depend on the target: applying it to any later
      // state (an interrupted earlier attempt) gives the same result.
      const half = await applyInMemory({
        ...plan,
        pieces: plan.pieces.slice(0, plan.pieces.length >> 1),
      }, h.final);
      assert.deepEqual(await applyInMemory(plan, half), h.before[k]);
    }
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("plan: refuses open, failed, damaged, incomplete and missing sessions", async () => {
  const mounts = (): MountSpec[] => [
    { writes: [{ offset: 0, data: new Uint8Array(4096).fill(1) }] },
    { writes: [{ offset: 8192, data: new Uint8Array(4096).fill(2) }] },
    { writes: [{ offset: 16384, data: new Uint8Array(4096).fill(3) }] },
  ];
  // Open: the last session is still live (recorded by an older module: "flush").
  let { root, ids } = await build(
    mounts().map((m, i) => (i === 2 ? { ...m, state: "open", durability: "flush" } : m)),
  );
  let s = await listSessions(root, { liveSessions: new Set([ids[2]]) });
  refuses(() => planRestore(s, ids[0]), "open", /still open: unmount/);
  refuses(() => planRestore(s, ids[2]), "open");
  // The same session after a crash: interrupted without write-ahead, a gap;
  // usable only when accepted.
  s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "interrupted", /would not be exact: .*interrupted/);
  const plan = planRestore(s, ids[0], { acceptGap: true });
  assert.match(plan.warnings.join("\n"), /interrupted/);
  assert.deepEqual(plan.gaps.map((g) => [g.code, g.session]), [["interrupted", ids[2]]]);
  assert.deepEqual(
    planRestore(s, ids[0], { allowOpen: true, acceptGap: true }).sessions,
    plan.sessions,
  );
  // Export of a mounted device may use the open session.
  s = await listSessions(root, { liveSessions: new Set([ids[2]]) });
  assert.equal(planRestore(s, ids[0], { allowOpen: true }).sessions.length, 3);
  await Deno.remove(root, { recursive: true });

  // Failed.
  ({ root, ids } = await build(mounts().map((m, i) => (i === 1 ? { ...m, state: "failed" } : m))));
  s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "failed");
  refuses(
    () => planRestore(s, ids[1]),
    "failed",
    /failed: writes to the device after the failure were not saved/,
  );
  assert.equal(planRestore(s, ids[0], { acceptGap: true }).gaps[0].code, "failed");
  assert.equal(planRestore(s, ids[2]).sessions.length, 1); // after it: fine

  // Damaged: a later session's data does not matter for structure, its map does.
  await Deno.writeFile(`${root}/${ids[1]}/blocks.map`, new Uint8Array(10));
  s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "damaged", /shorter than its 64-byte header/);
  // Damage is never accepted as a gap.
  refuses(() => planRestore(s, ids[0], { acceptGap: true }), "damaged");
  // Incomplete: as the target refused; later in the chain a gap.
  await Deno.remove(`${root}/${ids[2]}/meta.json`);
  s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[2]), "incomplete", /state before the next session's mount/);
  await Deno.remove(`${root}/${ids[1]}`, { recursive: true });
  s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "incomplete", /exact only if that mount changed nothing/);
  assert.equal(planRestore(s, ids[0], { acceptGap: true }).gaps.length, 1);
  await Deno.remove(root, { recursive: true });

  // Missing: the middle session was removed from the store.
  ({ root, ids } = await build(mounts()));
  await Deno.remove(`${root}/${ids[1]}`, { recursive: true });
  s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "missing", /seq 1.*seq 3/);
  const accepted = planRestore(s, ids[0], { acceptGap: true });
  assert.deepEqual(accepted.sessions.map((x) => x.id), [ids[0], ids[2]]);
  assert.equal(accepted.gaps[0].code, "missing");
  refuses(() => planRestore(s, ids[1]), "not-found");
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: unmounted writes after k refuse, before k do not", async () => {
  const w = (o: number) => ({ offset: o, data: new Uint8Array(4096).fill(o & 0xff | 1) });
  const { root, ids } = await build([
    { writes: [w(0)], unmountedAfter: [w(4096)] },
    { writes: [w(8192)] },
    { writes: [w(16384)] },
  ]);
  const s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "unmounted-writes", /1 write\(s\) to the device outside/);
  assert.equal(planRestore(s, ids[1]).sessions.length, 2); // session 1's own count is before it
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: unmounted_writes_after on the first session refuses, even with acceptGap", async () => {
  const w = (o: number) => ({ offset: o, data: new Uint8Array(4096).fill(o >> 12 | 1) });
  // umount, then a write (fsck, dd), then deactivate: the module counts it in
  // the session's meta.json at deactivation.
  const { root, ids, h } = await build([
    { writes: [w(0)], unmountedAfter: [w(4096), w(65536)], deactivate: true },
  ]);
  assert.equal(h.sessions[0].unmountedWritesAfter, 2);
  let s = await listSessions(root, { liveSessions: new Set() });
  assert.equal(s[0].meta!.unmountedWritesAfter, 2);
  const re = new RegExp(
    `^2 write\\(s\\) reached /dev/vdb outside any session after session ${ids[0]}`,
  );
  refuses(() => planRestore(s, ids[0]), "unmounted-writes", re);
  // Not a gap: --accept-gap does not let it through.
  refuses(() => planRestore(s, ids[0], { acceptGap: true }), "unmounted-writes", re);
  const r = restorability(s, ids[0]);
  assert.equal(r.kind, "refused");
  assert.equal(r.error!.acceptable, false);

  // Why: without the count (a module before it), the plan runs and the
  // result is not the state before the mount.
  const dir = `${root}/${ids[0]}`;
  const m = parseMeta(await Deno.readFile(`${dir}/meta.json`));
  await Deno.writeTextFile(`${dir}/meta.json`, encodeMeta({ ...m, unmountedWritesAfter: 0 }));
  s = await listSessions(root, { liveSessions: new Set() });
  const blind = await applyInMemory(planRestore(s, ids[0]), h.final);
  assert.notDeepEqual(blind, h.before[0]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: unmounted_writes_after on a later session refuses every restore before it", async () => {
  const w = (o: number) => ({ offset: o, data: new Uint8Array(4096).fill(o >> 12 | 1) });
  const { root, ids } = await build([
    { writes: [w(0)] },
    { writes: [w(8192)] },
    { writes: [w(16384)], unmountedAfter: [w(4096)], deactivate: true },
    { writes: [w(32768)] }, // a new activation
    { writes: [w(40960)] },
  ]);
  const s = await listSessions(root, { liveSessions: new Set() });
  assert.deepEqual(s.map((x) => x.meta!.seq), [1, 2, 3, 1, 2]);
  for (const k of [0, 1, 2]) {
    refuses(
      () => planRestore(s, ids[k], { acceptGap: true }),
      "unmounted-writes",
      new RegExp(`^1 write\\(s\\) reached /dev/vdb outside any session after session ${ids[2]} `),
    );
    assert.equal(restorability(s, ids[k]).kind, "refused");
  }
  // Sessions after the deactivation do not include those writes in their chain.
  assert.equal(planRestore(s, ids[3]).sessions.length, 2);
  assert.equal(restorability(s, ids[4]).kind, "exact");
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: a deactivation with no writes after the session restores exactly", async () => {
  const w = (o: number) => ({ offset: o, data: new Uint8Array(4096).fill(o >> 12 | 1) });
  const { root, ids, h } = await build([
    { writes: [w(0)] },
    { writes: [w(8192), w(0)], deactivate: true },
    { writes: [w(4096)] },
  ]);
  const s = await listSessions(root, { liveSessions: new Set() });
  assert.equal(s[1].meta!.unmountedWritesAfter, 0);
  assert.ok(s[1].meta!.deactivatedNs > s[1].meta!.endTimeNs);
  assert.equal(s[0].meta!.deactivatedNs, 0);
  for (const k of [0, 1, 2]) {
    const plan = planRestore(s, ids[k]);
    assert.deepEqual(plan.gaps, []);
    assert.deepEqual(await applyInMemory(plan, h.final), h.before[k]);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: the unmounted_writes_after refusal names the writes, the device and both times", async () => {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-plan-" });
  const mount = Date.UTC(2026, 11, 1, 17, 40, 1, 250) * 1e6; // closes 1 s later
  const id = await writeSession(root, {
    device: "/dev/vdb",
    kind: "block",
    size: 65536,
    seq: 1,
    mountTimeNs: mount,
    unmountedWritesAfter: 3,
    deactivatedNs: Date.UTC(2026, 11, 1, 17, 41, 10, 999) * 1e6 + 123,
    records: [{ devOffset: 0, data: new Uint8Array(4096) }],
  });
  const s = await listSessions(root, { liveSessions: new Set() });
  assert.throws(() => planRestore(s, id), (e) => {
    assert.ok(e instanceof RestoreError);
    assert.equal(e.code, "unmounted-writes");
    assert.equal(
      e.message,
      `3 write(s) reached /dev/vdb outside any session after session ${id} closed ` +
        `(2026-12-01T17:40:02Z) and before the device was deactivated (2026-12-01T17:41:10Z): ` +
        `the sessions cannot undo them`,
    );
    return true;
  });
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: reactivation warns, other devices and earlier damage do not matter", async () => {
  const w = (o: number) => ({ offset: o, data: new Uint8Array(4096).fill(9) });
  const { root, ids } = await build([
    { writes: [w(0)] },
    { writes: [w(8192)] },
    { writes: [w(16384)], reactivate: true },
  ]);
  await writeSession(root, {
    device: "/dev/vdc",
    size: 4096 * 4,
    seq: 1,
    mountTimeNs: 1_795_000_000_500_000_000,
    state: "failed",
    records: [],
  });
  await Deno.writeFile(`${root}/${ids[0]}/blocks.map`, new Uint8Array(3)); // before k=1
  const s = await listSessions(root, { liveSessions: new Set() });
  const plan = planRestore(s, ids[1]);
  assert.deepEqual(plan.sessions.map((x) => x.id), ids.slice(1));
  assert.match(plan.warnings.join("\n"), /deactivated between/);
  refuses(() => planRestore(s, ids[1], { device: "/dev/vdc" }), "invalid", /not of \/dev\/vdc/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: a session with the same store name but another device is ambiguous", async () => {
  const w = (o: number) => ({ offset: o, data: new Uint8Array(4096).fill(9) });
  const { root, ids, h } = await build([{ writes: [w(0)] }, { writes: [w(8192)] }], 1, 65536, {
    device: "/img/a b",
  });
  // A later session of "/img/a_b" (same store name "img_a_b") must not be silently skipped.
  const m = parseMeta(await Deno.readFile(`${root}/${ids[1]}/meta.json`));
  await Deno.writeTextFile(`${root}/${ids[1]}/meta.json`, encodeMeta({ ...m, device: "/img/a_b" }));
  const s = await listSessions(root, { liveSessions: new Set() });
  refuses(() => planRestore(s, ids[0]), "ambiguous");
  assert.ok(h);
  await Deno.remove(root, { recursive: true });
});

Deno.test("plan: records over a partial last chunk are clipped to the device", async () => {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-plan-" });
  const size = 3 * 4096 + 1024; // not a multiple of the chunk size
  const id = await writeSession(root, {
    device: "/img",
    size,
    seq: 1,
    mountTimeNs: 1_800_000_000_000_000_000,
    records: [{ devOffset: 8192, data: new Uint8Array(8192).fill(5) }],
  });
  const plan = planRestore(await listSessions(root, { liveSessions: new Set() }), id);
  assert.deepEqual(plan.pieces, [{
    devOffset: 8192,
    length: 4096 + 1024,
    session: 0,
    datOffset: 0,
  }]);
  await Deno.remove(root, { recursive: true });
});
