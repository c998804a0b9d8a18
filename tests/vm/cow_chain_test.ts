// vm: disks=1 disk-size=256M store-size=1G timeout=900
/**
 * Three sessions in a row: restoring to each one's pre-mount state gives the
 * whole-device hash recorded before that mount (latest first, as an
 * administrator walks back in time).
 */
import assert from "node:assert/strict";
import { sh, sha256, testDisks } from "./_helpers.ts";
import {
  activate,
  bdsnapTry,
  deactivate,
  loadModule,
  restore,
  sessions,
  withMount,
} from "./_bdsnap.ts";

Deno.test("three ext4 sessions: restore to each pre-mount state", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.ext4 -q -F ${dev}`);
  await activate(dev);
  const hashes: string[] = [];
  for (let i = 1; i <= 3; i++) {
    hashes.push(await sha256(dev));
    await withMount(
      dev,
      "ext4",
      `dd if=/dev/urandom of=$M/round${i} bs=64k count=${8 * i} status=none; ` +
        `dd if=/dev/urandom of=$M/shared bs=4k count=16 seek=${i * 4} conv=notrunc status=none; ` +
        `rm -f $M/round${i - 1}; sync`,
    );
  }
  await deactivate(dev);
  const list = await sessions(dev);
  assert.equal(list.length, 3);
  for (let k = 2; k >= 0; k--) {
    await restore(dev, list[k].id);
    assert.equal(await sha256(dev), hashes[k], `restore to session ${k + 1}`);
  }
  // The restores undid sessions 2 and 3: they are marked, and refused as targets.
  const after = await sessions(dev);
  assert.deepEqual(after.map((s) => s.superseded_by), [null, list[0].id, list[0].id]);
  const refused = await bdsnapTry(`restore ${dev} --session ${list[2].id} --yes`);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /undone by the restore to/);
  assert.equal(await sha256(dev), hashes[0], "nothing written");
});
