/**
 * Chains follow a device's stable identity (lib/identity.ts), not its path:
 * after the disks are renumbered, each chain stays with its own disk, and a
 * disk activated under another name continues its chain.
 */
import assert from "node:assert/strict";
import { RestoreError } from "../../lib/errors.ts";
import { planRestore } from "../../lib/plan.ts";
import { listSessions } from "../../lib/store.ts";
import { applyInMemory } from "./_restore_fixture.ts";
import {
  type History,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeHistory,
  writeSession,
} from "../_store_writer.ts";

const SIZE = 64 * 1024;

/** Two mounts of one disk: the first as `first`, the second (after renumbering) as `second`. */
function disk(seed: number, identity: string, first: string, second: string, startNs: number) {
  const rand = rng(seed);
  const h = simulate(
    randomBytes(rand, SIZE),
    first,
    [0, 1].map(() => ({ writes: randomWrites(rand, SIZE, 4, 8192) })),
    { kind: "block", startNs },
  );
  h.sessions[1].device = second;
  for (const s of h.sessions) s.identity = identity;
  return h;
}

async function store(...histories: History[]) {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-identity-" });
  const ids: string[][] = [];
  for (const h of histories) ids.push(await writeHistory(root, h));
  return { root, ids };
}

const T0 = 1_795_000_000_000_000_000;

Deno.test("identity: after renumbering each chain restores its own disk exactly", async () => {
  // A was vdb and is vdc after the reboot; B the other way round. Mounts interleave.
  const a = disk(1, "serial:disk-a", "/dev/vdb", "/dev/vdc", T0);
  const b = disk(2, "serial:disk-b", "/dev/vdc", "/dev/vdb", T0 + 1_000_000);
  const { root, ids } = await store(a, b);
  const sessions = await listSessions(root, { liveSessions: new Set() });
  for (
    const [h, own, id] of [[a, ids[0], "serial:disk-a"], [b, ids[1], "serial:disk-b"]] as const
  ) {
    const plan = planRestore(sessions, own[0], { identity: id });
    assert.deepEqual(plan.sessions.map((s) => s.id), [...own], "the chain is the disk's own");
    assert.equal(plan.identity, id);
    assert.deepEqual(await applyInMemory(plan, h.final), h.before[0]);
  }
  // The device given is the other disk: refused, naming both identities.
  assert.throws(
    () => planRestore(sessions, ids[0][0], { identity: "serial:disk-b", device: "/dev/vdb" }),
    (e) => e instanceof RestoreError && e.code === "invalid" && /disk-a.*disk-b/.test(e.message),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("identity: a later session of the path with no identity makes the chain ambiguous", async () => {
  const a = disk(3, "serial:disk-a", "/dev/vdb", "/dev/vdb", T0);
  const { root, ids } = await store(a);
  await writeSession(root, {
    device: "/dev/vdb",
    size: SIZE,
    seq: 1,
    mountTimeNs: T0 + 3_600_000_000_000,
    records: [],
  });
  const sessions = await listSessions(root, { liveSessions: new Set() });
  assert.throws(
    () => planRestore(sessions, ids[0][0]),
    (e) =>
      e instanceof RestoreError && e.code === "ambiguous" && /no recorded identity/.test(e.message),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("identity: a damaged session under the disk's other name still breaks its chain", async () => {
  const a = disk(4, "serial:disk-a", "/dev/vdb", "/dev/vdc", T0);
  const { root, ids } = await store(a);
  await Deno.remove(`${root}/${ids[0][1]}/meta.json`);
  const sessions = await listSessions(root, { liveSessions: new Set() });
  assert.throws(
    () => planRestore(sessions, ids[0][0]),
    (e) => e instanceof RestoreError && e.message.includes(ids[0][1]),
  );
  await Deno.remove(root, { recursive: true });
});
