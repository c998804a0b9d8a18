// vm: disks=2 disk-size=320M store-size=1G timeout=1200 tier=full
/**
 * The restorer on real devices: three xfs sessions restored one by one,
 * export while the device is mounted, restore into another device, and the
 * refusals (mounted or activated target, open session, wrong size), each of
 * which writes nothing.
 */
import assert from "node:assert/strict";
import { sh, sha256, testDisks } from "./_helpers.ts";
import {
  activate,
  bdsnap,
  bdsnapTry,
  deactivate,
  loadModule,
  restore,
  sessions,
  withMount,
} from "./_bdsnap.ts";

Deno.test("three xfs sessions: restore to each pre-mount state", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.xfs -q -f ${dev}`);
  await activate(dev);
  const hashes: string[] = [];
  for (let i = 1; i <= 3; i++) {
    hashes.push(await sha256(dev));
    await withMount(
      dev,
      "xfs",
      `dd if=/dev/urandom of=$M/r${i} bs=64k count=${4 * i} status=none; rm -f $M/r${i - 1}; sync`,
    );
  }
  await deactivate(dev);
  const list = (await sessions(dev)).slice(-3);
  for (let k = 2; k >= 0; k--) {
    await restore(dev, list[k].id);
    assert.equal(await sha256(dev), hashes[k], `restore to session ${k + 1}`);
  }
});

Deno.test("export while mounted gives the pre-mount image; --target restores a copy", async () => {
  const [dev, other] = testDisks();
  await loadModule();
  // No background inode-table zeroing: the "nothing written" checks below
  // compare hashes taken while the filesystem is mounted.
  await sh(`mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 ${dev}`);
  const before = await sha256(dev);
  await activate(dev);
  await sh(
    `mkdir -p /mnt/e && mount ${dev} /mnt/e && dd if=/dev/urandom of=/mnt/e/x bs=64k count=32 status=none && sync`,
  );
  const [open] = (await sessions(dev)).slice(-1);
  assert.equal(open.state, "open");
  // A restore needs the session closed and the device deactivated.
  const refused = await bdsnapTry(`restore ${dev} --session ${open.id} --yes`);
  assert.notEqual(refused.code, 0);
  await sh("umount /mnt/e");
  const [s] = (await sessions(dev)).slice(-1);
  // Mounted again, still activated: export gives the pre-mount image without writing the device.
  await sh(`mount ${dev} /mnt/e`);
  await bdsnap(`export ${dev} --session ${s.id} --output /tmp/pre.img`);
  assert.equal(await sha256("/tmp/pre.img"), before);
  // Refusals while mounted and activated; nothing written.
  await sh("sync");
  const current = await sha256(dev);
  const mounted = await bdsnapTry(`restore ${dev} --session ${s.id} --yes`);
  assert.notEqual(mounted.code, 0);
  assert.equal(await sha256(dev), current);
  await sh("umount /mnt/e");
  const activated = await bdsnapTry(`restore ${dev} --session ${s.id} --yes`);
  assert.notEqual(activated.code, 0);
  assert.match(activated.stderr, /activ/i);
  await deactivate(dev);
  // Into another device of the same size, leaving the original alone.
  await sh(`dd if=${dev} of=${other} bs=1M status=none oflag=direct`);
  const original = await sha256(dev);
  // With --read-back: the written ranges are re-read through O_DIRECT and compared.
  const copy = JSON.parse(
    await bdsnap(`--json restore ${dev} --session ${s.id} --target ${other} --yes --read-back`),
  );
  assert.equal(copy.direct_io, true);
  assert.equal(copy.verified_bytes, copy.written_bytes);
  assert.ok(copy.written_bytes > 0);
  assert.deepEqual(copy.superseded, [], "a restore into another device marks nothing");
  assert.equal(await sha256(other), before);
  assert.equal(await sha256(dev), original);
  // A target of another size is refused.
  await sh("truncate -s 100M /tmp/small.img");
  const small = await bdsnapTry(`restore ${dev} --session ${s.id} --target /tmp/small.img --yes`);
  assert.notEqual(small.code, 0);
  const size = (await sh(`blockdev --getsize64 ${dev}`)).trim();
  assert.match(small.stderr, new RegExp(`104857600 bytes, but .* ${size} bytes`));
});

Deno.test("dry run prints the plan and writes nothing; verify reports ok", async () => {
  const [dev] = testDisks();
  await loadModule();
  const [s] = (await sessions(dev)).slice(-1);
  const before = await sha256(dev);
  const plan = JSON.parse(await bdsnap(`restore ${dev} --session ${s.id} --dry-run --json`));
  assert.ok(plan.bytes > 0, JSON.stringify(plan));
  assert.equal(await sha256(dev), before);
  const v = JSON.parse(await bdsnap(`verify ${s.id} --json`));
  assert.equal(v.sessions[0].result, "ok", JSON.stringify(v));
  assert.deepEqual(v.sessions[0].problems, []);
});
