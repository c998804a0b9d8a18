// vm: disks=2 disk-size=512M store-size=512M timeout=900 tier=full
/**
 * Lifetimes an administrator runs into: rmmod while devices are active,
 * deactivation while mounted, writes outside any mount, and a partition
 * written through its whole-disk node.
 */
import assert from "node:assert/strict";
import { sh, sha256, shTry, testDisks } from "./_helpers.ts";
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

Deno.test("rmmod is refused while a device is activated or a session is open", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.ext4 -q -F ${dev}`);
  await activate(dev);
  assert.notEqual((await shTry("rmmod bdsnap")).code, 0);
  await sh(`mkdir -p /mnt/l && mount ${dev} /mnt/l`);
  await deactivate(dev);
  // Deactivated but mounted: the session runs on until the unmount.
  assert.notEqual((await shTry("rmmod bdsnap")).code, 0);
  const st = JSON.parse(await bdsnap("status --json"));
  assert.equal(st.sessions?.length ?? st.openSessions, 1, JSON.stringify(st));
  await sh("echo more > /mnt/l/after-deactivate && sync && umount /mnt/l");
  const [s] = (await sessions(dev)).slice(-1);
  assert.equal(s.state, "closed");
  assert.match(await sh("dmesg"), /bdsnap: .*deactivat.*(unmount|mount)/i);
  await sh("rmmod bdsnap");
  await loadModule();
});

Deno.test("writes outside a mount are counted, and the restorer refuses the broken chain", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.ext4 -q -F ${dev}`);
  await activate(dev);
  await withMount(dev, "ext4", "echo one > $M/a; sync");
  // dd on the activated, unmounted device: no session covers it.
  await sh(`dd if=/dev/urandom of=${dev} bs=4k count=4 seek=50000 oflag=direct status=none`);
  await withMount(dev, "ext4", "echo two > $M/b; sync");
  await deactivate(dev);
  const list = (await sessions(dev)).slice(-2);
  const meta = JSON.parse(await Deno.readTextFile(`/snapshot/${list[1].id}/meta.json`));
  assert.ok(meta.unmounted_writes_before > 0, JSON.stringify(meta));
  const before = await sha256(dev);
  const r = await bdsnapTry(`restore ${dev} --session ${list[0].id} --yes`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /outside|unmounted/i);
  assert.equal(await sha256(dev), before, "a refused restore writes nothing");
});

Deno.test("a partition written through the whole-disk node is captured", async () => {
  const disk = testDisks()[1];
  await loadModule();
  await sh(`printf 'label: dos\\nstart=2048, size=200M\\nsize=100M\\n' | sfdisk -q ${disk}`);
  await sh(`partprobe ${disk} 2>/dev/null || blockdev --rereadpt ${disk}`);
  const part = `${disk}1`;
  await sh(`mkfs.ext4 -q -F ${part}`);
  const before = await sha256(part);
  await activate(part);
  await sh(`mkdir -p /mnt/p && mount ${part} /mnt/p`);
  // 1 MiB into the partition, written via the whole disk.
  await sh(
    `dd if=/dev/urandom of=${disk} bs=4k count=16 seek=$((2048 * 512 / 4096 + 256)) ` +
      `oflag=direct status=none`,
  );
  await sh("umount /mnt/p");
  await deactivate(part);
  const [s] = (await sessions(part)).slice(-1);
  await restore(part, s.id);
  assert.equal(await sha256(part), before);
});
