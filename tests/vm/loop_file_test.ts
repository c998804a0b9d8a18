// vm: disks=1 store-size=512M timeout=900 tier=full
/**
 * An image file activated by its path: any loop device backed by that file
 * is covered, attached before or after activation, and the restore by file
 * path gives the image its pre-mount bytes back.
 */
import assert from "node:assert/strict";
import { sh, sha256 } from "./_helpers.ts";
import { activate, deactivate, loadModule, restore, sessions, withMount } from "./_bdsnap.ts";

const IMG = "/var/tmp/bdsnap images/disk one.img";

Deno.test("loop-backed image file: activated by path, restored by path", async () => {
  await loadModule();
  await sh(
    `mkdir -p "/var/tmp/bdsnap images" && truncate -s 256M "${IMG}" && mkfs.ext4 -q -F "${IMG}"`,
  );
  const before = await sha256(`"${IMG}"`);
  await activate(`"${IMG}"`);
  // Attached after activation.
  const loop = (await sh(`losetup -f --show "${IMG}"`)).trim();
  await withMount(loop, "ext4", "dd if=/dev/urandom of=$M/x bs=64k count=64 status=none; sync");
  await sh(`losetup -d ${loop}`);
  await deactivate(`"${IMG}"`);
  const list = await sessions(`"${IMG}"`);
  assert.equal(list.length, 1);
  assert.equal(list[0].device, IMG);
  assert.equal(list[0].state, "closed");
  assert.notEqual(await sha256(`"${IMG}"`), before);
  await restore(`"${IMG}"`, list[0].id);
  assert.equal(await sha256(`"${IMG}"`), before);
});

Deno.test("loop device attached before activation is covered too", async () => {
  await loadModule();
  const img = "/var/tmp/early.img";
  await sh(`truncate -s 128M ${img} && mkfs.ext4 -q -F ${img}`);
  const loop = (await sh(`losetup -f --show ${img}`)).trim();
  const before = await sha256(img);
  await activate(img);
  await withMount(loop, "ext4", "echo data > $M/y; sync");
  await deactivate(img);
  await sh(`losetup -d ${loop}`);
  const list = await sessions(img);
  assert.equal(list.length, 1);
  await restore(img, list[0].id);
  assert.equal(await sha256(img), before);
});
