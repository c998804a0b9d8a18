// vm: disks=1 disk-size=512M store-size=48M timeout=900
/**
 * A store too small for the session: the session fails, every origin write
 * still succeeds and verifies, and the kernel log stays clean (the harness's
 * dmesg gate checks that last part for every test).
 */
import assert from "node:assert/strict";
import { sh, testDisks } from "./_helpers.ts";
import { activate, bdsnap, deactivate, loadModule, sessions, withMount } from "./_bdsnap.ts";

Deno.test("store full: session fails, origin writes succeed and verify", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.ext4 -q -F ${dev}`);
  await withMount(dev, "ext4", "dd if=/dev/urandom of=$M/old bs=1M count=200 status=none; sync");
  await activate(dev);
  await withMount(
    dev,
    "ext4",
    // Overwrite 200 MiB that the store (48 MiB) cannot hold, then verify.
    "dd if=/dev/urandom of=/tmp/new bs=1M count=200 status=none; " +
      "dd if=/tmp/new of=$M/old bs=1M conv=notrunc,fsync status=none; " +
      "fio --name=v --filename=$M/v --rw=randwrite --bs=4k --size=32M --verify=crc32c " +
      "--verify_fatal=1 --direct=1 >/dev/null; " +
      "echo 3 > /proc/sys/vm/drop_caches; cmp /tmp/new $M/old",
  );
  // Still intact after a fresh mount.
  await withMount(dev, "ext4", "echo 3 > /proc/sys/vm/drop_caches; cmp /tmp/new $M/old");
  const status = JSON.parse(await bdsnap("status --json"));
  assert.ok(status, "status works after a failed session");
  await deactivate(dev);
  const [s] = (await sessions(dev)).slice(-1);
  assert.equal(s.state, "failed");
  const meta = JSON.parse(await Deno.readTextFile(`/snapshot/${s.id}/meta.json`));
  assert.equal(meta.state, "failed");
  assert.match(meta.error, /ENOSPC|No space|-28/);
});
