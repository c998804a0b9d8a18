import assert from "node:assert/strict";
import { listSessions, markSuperseded } from "../../lib/store.ts";
import { planRetention, type RetentionPolicy } from "../../lib/retention.ts";
import { changedRanges, sessionJson } from "../../cli/_lib/store_view.ts";
import { showLines } from "../../cli/show.ts";
import { formatNs } from "../../cli/_lib/units.ts";
import { fakeSession, minuteNs } from "./_fake_sessions.ts";
import { writeSession } from "../_store_writer.ts";
import { run } from "./_cli.ts";

const HOUR_NS = 3600e9;
const T0 = Date.UTC(2026, 10, 1, 8, 0, 0) * 1e6; // 2026-11-01 08:00 UTC, in ns
const SIZE = 1 << 20;
const chunk = (fill: number) => new Uint8Array(4096).fill(fill);

type State = "closed" | "open" | "failed";

/** A store with one chain per device: states oldest first, one hour apart. */
async function makeStore(
  chains: Record<string, State[]>,
): Promise<{ root: string; ids: Record<string, string[]> }> {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-cli-" });
  const ids: Record<string, string[]> = {};
  let n = 0;
  for (const [device, states] of Object.entries(chains)) {
    ids[device] = [];
    for (const [i, state] of states.entries()) {
      ids[device].push(
        await writeSession(root, {
          device,
          kind: device.startsWith("/dev/") ? "block" : "file",
          dev: "254:16",
          size: SIZE,
          seq: i + 1,
          mountTimeNs: T0 + (n++) * HOUR_NS,
          state,
          error: state === "failed" ? "ENOSPC" : "",
          records: [
            { devOffset: 8192, data: chunk(1) },
            { devOffset: 0, data: chunk(2) },
            { devOffset: 4096, data: chunk(3) },
            { devOffset: 65536 + i * 4096, data: chunk(4) },
          ],
        }),
      );
    }
  }
  return { root, ids };
}

const SESSION_KEYS = [
  "id",
  "device",
  "kind",
  "dev",
  "fs_type",
  "seq",
  "start",
  "end",
  "start_ns",
  "end_ns",
  "state",
  "error",
  "durability",
  "chunks",
  "bytes",
  "records",
  "size",
  "chunk_size",
  "unmounted_writes_before",
  "unmounted_writes_after",
  "deactivated_ns",
  "superseded_by",
  "problems",
];

Deno.test("sessions --json: stable shape, oldest first, filtered by device", async () => {
  const { root, ids } = await makeStore({
    "/dev/vdb": ["closed", "closed"],
    "/img/a b.img": ["closed"],
  });
  const r = await run(["--store", root, "--json", "sessions"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ["store", "sessions"]);
  assert.equal(out.store, root);
  assert.deepEqual(out.sessions.map((s: { id: string }) => s.id), [
    ...ids["/dev/vdb"],
    ...ids["/img/a b.img"],
  ]);
  const s = out.sessions[0];
  assert.deepEqual(Object.keys(s), [...SESSION_KEYS, "restore", "exact", "chain_number"]);
  assert.deepEqual(
    { ...s, problems: undefined, chain_number: undefined },
    {
      id: ids["/dev/vdb"][0],
      device: "/dev/vdb",
      kind: "block",
      dev: "254:16",
      fs_type: "ext4",
      seq: 1,
      start: "2026-11-01T08:00:00.000Z",
      end: "2026-11-01T08:00:01.000Z",
      start_ns: T0,
      end_ns: T0 + 1e9,
      state: "closed",
      error: null,
      durability: "write-ahead",
      chunks: 4,
      bytes: 16384,
      records: 4,
      size: SIZE,
      chunk_size: 4096,
      unmounted_writes_before: 0,
      unmounted_writes_after: 0,
      deactivated_ns: null,
      superseded_by: null,
      problems: undefined,
      restore: "exact",
      exact: true,
      chain_number: undefined,
    },
  );
  assert.deepEqual(s.problems, []);
  assert.equal(s.chain_number, 1);

  const f = JSON.parse((await run(["--store", root, "--json", "sessions", "/img/a b.img"])).stdout);
  assert.deepEqual(f.sessions.map((x: { id: string }) => x.id), ids["/img/a b.img"]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("sessions: human table with units and local times", async () => {
  const { root, ids } = await makeStore({ "/dev/vdb": ["closed", "failed"] });
  const r = await run(["--store", root, "sessions"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.match(
    lines[0],
    /^# +SESSION +DEVICE +FS +STARTED +ENDED +CHUNKS +SIZE +DURABILITY +RESTORE +STATE$/,
  );
  assert.ok(lines[1].startsWith(`1  ${ids["/dev/vdb"][0]}`), lines[1]);
  assert.ok(lines[2].startsWith(`2  ${ids["/dev/vdb"][1]}`), lines[2]);
  assert.match(
    lines[1],
    /\/dev\/vdb +ext4 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +4 +16\.0 KiB +write-ahead +inexact +closed$/,
  );
  assert.match(lines[2], /write-ahead +inexact +failed \(ENOSPC\)$/);
  const empty = await Deno.makeTempDir();
  assert.equal((await run(["--store", empty, "sessions"])).stdout, "no sessions\n");
  const missing = await run(["--store", `${empty}/nope`, "sessions"]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /^bdsnap: store .*nope: not found: give the store root with --store DIR\n$/,
  );
  await Deno.remove(root, { recursive: true });
  await Deno.remove(empty, { recursive: true });
});

Deno.test("show: detail, and --ranges as a sorted, merged changed-block list", async () => {
  const { root, ids } = await makeStore({ "/dev/vdb": ["closed"] });
  const id = ids["/dev/vdb"][0];
  let r = await run(["--store", root, "--json", "show", id, "--ranges"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ["session", "dir", "torn_tail", "ranges"]);
  assert.deepEqual(Object.keys(out.session), SESSION_KEYS);
  assert.equal(out.dir, `${root}/${id}`);
  assert.equal(out.torn_tail, null);
  assert.deepEqual(out.ranges, [{ offset: 0, length: 12288 }, { offset: 65536, length: 4096 }]);

  r = await run(["--store", root, "--json", "show", id]);
  assert.equal(JSON.parse(r.stdout).ranges, null);

  r = await run(["--store", root, "show", `${root}/${id}`, "--ranges"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^session: +dev_vdb_20261101T080000\.000000Z$/m);
  assert.match(r.stdout, /^saved: +4 chunks, 16\.0 KiB in 4 records$/m);
  assert.match(r.stdout, /^durability: +write-ahead \(each pre-image saved before its write/m);
  assert.match(r.stdout, /^OFFSET +LENGTH\n +0 +12288\n 65536 +4096\n$/m);

  r = await run(["--store", root, "show", "dev_vdb_20200101T000000.000000Z"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^bdsnap: no session dev_vdb_20200101T000000\.000000Z in .*`bdsnap sessions` lists them\n$/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("show: writes outside any mount after the session, counted at deactivation", () => {
  const after = fakeSession({
    device: "/dev/vdb",
    seq: 1,
    minute: 0,
    state: "closed",
    unmountedWritesAfter: 3,
  });
  const m = after.meta!;
  const j = sessionJson(after);
  assert.deepEqual([j.unmounted_writes_after, j.deactivated_ns], [3, m.deactivatedNs]);
  assert.ok(m.deactivatedNs > 0);
  assert.ok(
    showLines(after, null).includes(
      `writes outside any mount after this one: 3 (before the deactivation at ` +
        `${formatNs(m.deactivatedNs)})`,
    ),
  );

  // Deactivated with no writes since: the time only.
  const quiet = fakeSession({
    device: "/dev/vdb",
    seq: 1,
    minute: 0,
    state: "closed",
    deactivatedNs: minuteNs(1),
  });
  const lines = showLines(quiet, null);
  assert.ok(lines.includes(`deactivated: ${formatNs(minuteNs(1))}`), lines.join("\n"));
  assert.ok(!lines.some((l) => l.includes("after this one")));
  assert.deepEqual(
    [sessionJson(quiet).unmounted_writes_after, sessionJson(quiet).deactivated_ns],
    [0, minuteNs(1)],
  );

  // Neither: no line, and null in JSON for the time.
  const plain = fakeSession({ device: "/dev/vdb", seq: 1, minute: 0, state: "closed" });
  assert.ok(!showLines(plain, null).some((l) => /after this one|deactivated/.test(l)));
  assert.deepEqual(
    [sessionJson(plain).unmounted_writes_after, sessionJson(plain).deactivated_ns],
    [0, null],
  );
});

Deno.test("changedRanges: empty session", () => {
  assert.deepEqual(
    changedRanges({
      records: {
        count: 0,
        devOffset: new Float64Array(),
        datOffset: new Float64Array(),
        length: new Uint32Array(),
        dataCrc: new Uint32Array(),
      },
    } as never),
    [],
  );
});

async function prunePlan(
  chains: Record<string, State[]>,
  policy: RetentionPolicy,
  live?: Set<string>,
  now?: number,
) {
  const { root, ids } = await makeStore(chains);
  const sessions = await listSessions(root, { liveSessions: live ?? new Set() });
  const plan = planRetention(sessions, policy, { now, live: live ?? new Set() });
  await Deno.remove(root, { recursive: true });
  const idx = (id: string) => {
    for (const [d, list] of Object.entries(ids)) {
      if (list.includes(id)) return `${d}#${list.indexOf(id)}`;
    }
    return id;
  };
  return {
    remove: plan.remove.map((s) => idx(s.id)),
    keep: plan.keep.map((k) => `${idx(k.session.id)}:${k.reason}`),
  };
}

Deno.test("prune plan: --keep N keeps the newest N restore points of each device", async () => {
  const p = await prunePlan({
    "/dev/vdb": ["closed", "closed", "closed", "closed"],
    "/dev/vdc": ["closed"],
  }, {
    keep: 2,
  });
  assert.deepEqual(p.remove, ["/dev/vdb#0", "/dev/vdb#1"]);
  assert.deepEqual(p.keep, ["/dev/vdb#2:keep", "/dev/vdb#3:newest", "/dev/vdc#0:newest"]);
});

Deno.test("prune plan: never an open or live session, nor the history a mount needs", async () => {
  const p = await prunePlan({ "/dev/vdb": ["closed", "closed", "open"] }, { keep: 0 }, new Set());
  // without the module the open one reads as interrupted: the newest restore point
  assert.deepEqual(p.remove, ["/dev/vdb#0", "/dev/vdb#1"]);
  assert.deepEqual(p.keep, ["/dev/vdb#2:newest"]);
  const { root, ids } = await makeStore({ "/dev/vdb": ["closed", "closed", "open"] });
  const live = new Set([ids["/dev/vdb"][2]]);
  const sessions = await listSessions(root, { liveSessions: live });
  const plan = planRetention(sessions, { keep: 0 }, { live });
  assert.deepEqual(plan.remove.map((s) => s.id), [ids["/dev/vdb"][0]]);
  assert.deepEqual(plan.keep.map((k) => k.reason), ["newest", "open"]);
  // a session the module says is live is kept even if meta.json says closed
  const plan2 = planRetention(sessions, { keep: 0 }, {
    live: new Set([ids["/dev/vdb"][1], ids["/dev/vdb"][2]]),
  });
  assert.deepEqual(plan2.remove.map((s) => s.id), []);
  assert.deepEqual(plan2.keep.map((k) => k.reason), ["newest", "live", "open"]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("prune plan: an interrupted or failed session does not pin newer ones", async () => {
  // An interrupted session is an inexact restore point (--accept-gap): with
  // exact ones newer than it, it goes like any old session.
  const { root, ids } = await makeStore({ "/dev/vdb": ["closed", "open", "closed", "closed"] });
  const sessions = await listSessions(root, { liveSessions: new Set() });
  assert.equal(sessions[1].state, "interrupted");
  const plan = planRetention(sessions, { keep: 1 }, { live: new Set() });
  assert.deepEqual(plan.remove.map((s) => s.id), ids["/dev/vdb"].slice(0, 3));
  assert.deepEqual(plan.keep.map((k) => k.reason), ["newest"]);
  await Deno.remove(root, { recursive: true });

  // A failed session breaks the chain: the sessions up to it are inexact restore points.
  const p = await prunePlan({ "/dev/vdb": ["closed", "failed", "closed", "closed"] }, { keep: 3 });
  assert.deepEqual(p.remove, ["/dev/vdb#0"]);
  assert.deepEqual(p.keep, ["/dev/vdb#1:keep", "/dev/vdb#2:keep", "/dev/vdb#3:newest"]);
});

Deno.test("prune plan: --older-than uses the end time", async () => {
  // sessions end at T0+1s, T0+1h+1s, T0+2h+1s; "now" is T0 + 3h
  const now = T0 / 1e6 + 3 * 3600e3;
  const p = await prunePlan(
    { "/dev/vdb": ["closed", "closed", "closed"] },
    { olderThanMs: 90 * 60e3 },
    undefined,
    now,
  );
  assert.deepEqual(p.remove, ["/dev/vdb#0", "/dev/vdb#1"]);
  assert.deepEqual(p.keep, ["/dev/vdb#2:newest"]);
});

Deno.test("prune: --dry-run removes nothing; a real run removes and reports JSON", async () => {
  const { root, ids } = await makeStore({
    "/dev/vdb": ["closed", "closed", "closed"],
    "/dev/vdc": ["closed", "closed"],
  });
  let r = await run(["--store", root, "prune", "--keep", "1", "/dev/vdb", "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^would remove ${ids["/dev/vdb"][0]} \\(16\\.\\d KiB\\)$`, "m"),
  );
  assert.match(r.stdout, /^would free 33\.\d KiB \(2 removed, 1 kept\)$/m);
  assert.match(
    r.stdout,
    new RegExp(
      `^kept ${ids["/dev/vdb"][2]}: newest \\(the newest restore point of its device\\)$`,
      "m",
    ),
  );
  assert.equal((await listSessions(root)).length, 5);

  r = await run(["--store", root, "--json", "prune", "--keep", "1", "/dev/vdb"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ["store", "dry_run", "removed", "kept", "freed_bytes"]);
  assert.equal(out.dry_run, false);
  assert.deepEqual(out.removed.map((x: { id: string }) => x.id), ids["/dev/vdb"].slice(0, 2));
  assert.deepEqual(Object.keys(out.removed[0]), ["id", "device", "bytes"]);
  assert.deepEqual(out.kept, [{
    id: ids["/dev/vdb"][2],
    device: "/dev/vdb",
    reason: "newest",
    detail: "the newest restore point of its device",
  }]);
  assert.equal(out.freed_bytes, out.removed[0].bytes + out.removed[1].bytes);
  const left = (await listSessions(root)).map((s) => s.id);
  assert.deepEqual(left, [ids["/dev/vdb"][2], ...ids["/dev/vdc"]]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("prune: after a restore to the first session, --keep 2 keeps it (issue 18)", async () => {
  const { root, ids } = await makeStore({ "/dev/vdb": ["closed", "closed", "closed", "closed"] });
  const chain = ids["/dev/vdb"];
  await markSuperseded(
    (await listSessions(root)).filter((s) => s.id !== chain[0]),
    chain[0],
  );
  const r = await run(["--store", root, "--json", "prune", "--keep", "2", "/dev/vdb"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.removed, []);
  assert.deepEqual(out.kept.map((k: { reason: string }) => k.reason), [
    "newest",
    "needed",
    "needed",
    "needed",
  ]);
  assert.equal((await listSessions(root)).length, 4);
  // --max-size with a floor: nothing can go, and that is said per session.
  const t = await run(["--store", root, "prune", "--max-size", "1K", "--dry-run"]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(
    t.stdout,
    new RegExp(`^kept ${chain[1]}: needed \\(the restore to ${chain[0]} reads it\\)$`, "m"),
  );
  const bad = await run(["--store", root, "prune", "--max-size", "lots"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bad size "lots"/);
  await Deno.remove(root, { recursive: true });
});
