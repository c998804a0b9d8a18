/**
 * The view reader on simulated stores: every byte it returns is the state
 * before the chosen mount, including after the open session's blocks.map
 * grew behind its back; and it refuses, for good, once the module reports
 * what makes a view inexact.
 */
import assert from "node:assert/strict";
import { randomBytes, randomWrites, rng, simulate, writeHistory } from "../_store_writer.ts";
import { listSessions } from "../../lib/store.ts";
import { planRestore } from "../../lib/plan.ts";
import { RestoreError } from "../../lib/errors.ts";
import { type LiveState, ViewReader, type ViewSource } from "../../lib/view_reader.ts";

const SIZE = 256 * 1024;
const IO = 48 * 1024; // not a chunk multiple: pieces are cut at both ends

/** A history of a closed mount and an open one with `openWrites` writes. */
function history(image: string, openWrites: number) {
  const rand = rng(11);
  const initial = randomBytes(rand, SIZE);
  const first = randomWrites(rand, SIZE, 8, 30000);
  return simulate(initial, image, [
    { state: "closed", writes: first },
    { state: "open", writes: randomWrites(rand, SIZE, openWrites, 30000) },
  ]);
}

interface Setup {
  dir: string;
  image: string;
  root: string;
  ids: string[];
  live: LiveState | null;
  source: (session: string) => ViewSource;
}

async function setup(openWrites: number): Promise<Setup & { before: Uint8Array[] }> {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-view-" });
  const image = `${dir}/disk.img`;
  const root = `${dir}/store`;
  const h = history(image, openWrites);
  const ids = await writeHistory(root, h);
  await Deno.writeFile(image, h.final);
  const s: Setup & { before: Uint8Array[] } = {
    before: h.before,
    dir,
    image,
    root,
    ids,
    live: { failed: false, sessions: 2, openSession: ids[1], unmountedWrites: 0 },
    source: (session) => ({
      plan: async () =>
        planRestore(
          await listSessions(root, { liveSessions: new Set([ids[1]]) }),
          session,
          { allowOpen: true },
        ),
      live: () => s.live,
    }),
  };
  return s;
}

async function readAll(r: ViewReader): Promise<Uint8Array> {
  const out = new Uint8Array(r.size);
  for (let at = 0; at < r.size; at += IO) {
    await r.read(out.subarray(at, Math.min(r.size, at + IO)), at);
  }
  return out;
}

Deno.test("view reader: each session's view is its pre-mount state, the open one's too", async () => {
  const s = await setup(8);
  for (const [k, id] of s.ids.entries()) {
    const r = await ViewReader.open(s.source(id), s.image, { ioSize: IO, direct: false });
    try {
      assert.deepEqual(await readAll(r), s.before[k], `view of session ${k}`);
      assert.ok(r.stats.storeBytes > 0, "some bytes came from the store");
      assert.equal(r.stats.replans, 0);
    } finally {
      r.close();
    }
  }
  await Deno.remove(s.dir, { recursive: true });
});

Deno.test("view reader: records the open session appends later are used (write-ahead)", async () => {
  const s = await setup(8);
  const r = await ViewReader.open(s.source(s.ids[0]), s.image, { ioSize: IO, direct: false });
  try {
    assert.deepEqual(await readAll(r), s.before[0]);
    // More writes in the open session: their records, then the origin, as write-ahead orders them.
    const more = history(s.image, 16);
    await writeHistory(s.root, more);
    await Deno.writeFile(s.image, more.final);
    assert.deepEqual(await readAll(r), s.before[0], "still the pre-mount state");
    assert.equal(r.stats.extended, 1, "the new records were added once, without a replan");
    assert.equal(r.stats.replans, 0);
    const again = await ViewReader.open(s.source(s.ids[0]), s.image, { ioSize: IO, direct: false });
    try {
      assert.deepEqual(r.plan.pieces, again.plan.pieces, "the same pieces as a plan from scratch");
    } finally {
      again.close();
    }
  } finally {
    r.close();
  }
  await Deno.remove(s.dir, { recursive: true });
});

Deno.test("view reader: a session closing replans; outside writes, deactivation and failure end it", async () => {
  const s = await setup(8);
  const r = await ViewReader.open(s.source(s.ids[0]), s.image, { ioSize: IO, direct: false });
  const buf = new Uint8Array(IO);
  try {
    s.live = { failed: false, sessions: 2, openSession: "", unmountedWrites: 0 };
    await r.read(buf, 0);
    assert.equal(r.stats.replans, 1);
    assert.deepEqual(buf, s.before[0].subarray(0, IO));
    s.live = { ...s.live, unmountedWrites: 1 };
    await assert.rejects(
      () => r.read(buf, 0),
      (e) => e instanceof RestoreError && e.code === "unmounted-writes",
    );
    s.live = { ...s.live, unmountedWrites: 0 };
    await assert.rejects(() => r.read(buf, 0), /outside any session/, "stays refused");
  } finally {
    r.close();
  }
  for (
    const live of [null, { failed: true, sessions: 2, openSession: s.ids[1], unmountedWrites: 0 }]
  ) {
    s.live = { failed: false, sessions: 2, openSession: s.ids[1], unmountedWrites: 0 };
    const v = await ViewReader.open(s.source(s.ids[0]), s.image, { ioSize: IO, direct: false });
    try {
      s.live = live;
      await assert.rejects(
        () => v.read(buf, 0),
        (e) => e instanceof RestoreError && e.code === (live === null ? "invalid" : "failed"),
      );
    } finally {
      v.close();
    }
  }
  s.live = null;
  await assert.rejects(
    () => ViewReader.open(s.source(s.ids[0]), s.image, { ioSize: IO, direct: false }),
    /not activated/,
  );
  await assert.rejects(async () => {
    s.live = { failed: false, sessions: 2, openSession: s.ids[1], unmountedWrites: 0 };
    const v = await ViewReader.open(s.source(s.ids[0]), s.image, { ioSize: IO, direct: false });
    try {
      await v.read(new Uint8Array(IO), SIZE - 512);
    } finally {
      v.close();
    }
  }, /past the end/);
  await Deno.remove(s.dir, { recursive: true });
});
