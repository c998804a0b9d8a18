// vm: disks=1 disk-size=1G store-size=2G timeout=1200 tier=full
/**
 * Concurrent writers during a session: fio random writes with verification
 * on a mounted ext4. The origin's data verifies and the restore is exact.
 */
import assert from "node:assert/strict";
import { sh, sha256, testDisks } from "./_helpers.ts";
import { activate, deactivate, loadModule, restore, sessions, withMount } from "./_bdsnap.ts";

Deno.test("fio random writes with verify during a session; exact restore", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.ext4 -q -F ${dev}`);
  await withMount(dev, "ext4", "dd if=/dev/urandom of=$M/pre bs=1M count=64 status=none; sync");
  const before = await sha256(dev);
  await activate(dev);
  await withMount(
    dev,
    "ext4",
    "fio --name=cow --directory=$M --rw=randwrite --bs=4k --size=12M --numjobs=4 " +
      "--iodepth=8 --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 " +
      "--verify_fatal=1 --group_reporting --output-format=terse >/tmp/fio.out; " +
      "fio --name=buffered --directory=$M --rw=randwrite --bs=16k --size=8M --numjobs=2 " +
      "--verify=md5 --verify_fatal=1 --fsync=8 >/tmp/fio2.out; sync",
  );
  await deactivate(dev);
  const [s] = (await sessions(dev)).slice(-1);
  assert.equal(s.state, "closed");
  await restore(dev, s.id);
  assert.equal(await sha256(dev), before);
});
