/**
 * The scripting contract for session and device arguments: `show` and
 * `verify` take `--session`'s forms, `sessions --json` numbers the chain,
 * and every command matches a DEV typed as a symbolic link to the path the
 * sessions recorded.
 * @module
 */

import assert from "node:assert/strict";
import { writeSession } from "../_store_writer.ts";
import { run } from "./_cli.ts";

const T0 = Date.UTC(2026, 10, 1, 8, 0, 0) * 1e6;

/** A store with `n` closed sessions of each device, an hour apart. */
async function store(devices: string[], n: number) {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-args-" });
  const ids: Record<string, string[]> = {};
  let k = 0;
  for (const device of devices) {
    ids[device] = [];
    for (let i = 0; i < n; i++) {
      ids[device].push(
        await writeSession(root, {
          device,
          kind: "file",
          size: 1 << 20,
          seq: i + 1,
          mountTimeNs: T0 + (k++) * 3600e9,
          state: "closed",
          records: [{ devOffset: 4096 * i, data: new Uint8Array(4096).fill(i + 1) }],
        }),
      );
    }
  }
  return { root, ids };
}

Deno.test("show and verify take latest, a chain number and a unique prefix", async () => {
  const { root, ids } = await store(["/img/a.img"], 3);
  const a = ids["/img/a.img"];
  const shown = async (spec: string) => {
    const r = await run(["--store", root, "--json", "show", spec]);
    return r.code === 0 ? JSON.parse(r.stdout).session.id : r.stderr;
  };
  assert.equal(await shown("latest"), a[2]);
  assert.equal(await shown("1"), a[0]);
  assert.equal(await shown(a[1]), a[1]);
  assert.equal(await shown(`${root}/${a[1]}/`), a[1]);
  assert.equal(await shown(a[0].slice(0, -8)), a[0]);
  assert.match(await shown("7"), /--session 7: the device has sessions 1 to 3/);
  assert.match(await shown(a[0].slice(0, 12)), /ambiguous: 3 sessions start with it/);

  const v = await run(["--store", root, "--json", "verify", "latest", "2"]);
  assert.equal(v.code, 0, v.stderr);
  assert.deepEqual(JSON.parse(v.stdout).sessions.map((s: { id: string }) => s.id), [a[2], a[1]]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("show: latest needs one device in the store", async () => {
  const { root } = await store(["/img/a.img", "/img/b.img"], 1);
  const r = await run(["--store", root, "show", "latest"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--session latest: the store holds several devices/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("sessions --json: chain_number is the # column, 1 = oldest of its device", async () => {
  const { root, ids } = await store(["/img/a.img", "/img/b.img"], 2);
  const r = await run(["--store", root, "--json", "sessions"]);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout).sessions.map((s: { id: string; chain_number: number }) => [
    s.id,
    s.chain_number,
  ]);
  assert.deepEqual(got, [
    [ids["/img/a.img"][0], 1],
    [ids["/img/a.img"][1], 2],
    [ids["/img/b.img"][0], 1],
    [ids["/img/b.img"][1], 2],
  ]);
  for (const key of ["id", "state", "device", "fs_type", "records", "bytes"]) {
    assert.ok(key in JSON.parse(r.stdout).sessions[0], key);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("sessions and prune match DEV through a symbolic link, as restore does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-link-" });
  const image = `${dir}/disk.img`;
  await Deno.writeFile(image, new Uint8Array(1 << 20));
  const link = `${dir}/by-id-disk`;
  await Deno.symlink(image, link);
  const { root, ids } = await store([image, "/img/other.img"], 2);

  const listed = await run(["--store", root, "--json", "sessions", link]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout).sessions.map((s: { id: string }) => s.id), ids[image]);

  const shown = await run(["--store", root, "sessions", link]);
  assert.ok(shown.stdout.includes(ids[image][0]), shown.stdout);
  assert.ok(!shown.stdout.includes(ids["/img/other.img"][0]), shown.stdout);

  const pruned = await run(
    ["--store", root, "--json", "prune", link, "--keep", "1", "--dry-run"],
    { BDSNAP_AUDIT: "0" },
  );
  assert.equal(pruned.code, 0, pruned.stderr);
  const p = JSON.parse(pruned.stdout);
  assert.deepEqual(p.removed.map((x: { id: string }) => x.id), [ids[image][0]]);
  assert.deepEqual(p.kept.map((x: { id: string }) => x.id), [ids[image][1]]);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});
