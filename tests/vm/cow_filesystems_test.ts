// vm: disks=1 disk-size=320M store-size=1G timeout=2400
// timeout: a hang guard; 570 s alone (full tier), over 1200 s beside three other TCG VMs on 2 cores.
/**
 * For every filesystem: mount, write a realistic mix, unmount, restore, and
 * the whole device is byte-identical to its state before the mount. Also a
 * mount and unmount with no user writes, which proves that the writes a
 * filesystem makes while mounting and unmounting are captured.
 */
import assert from "node:assert/strict";
import { fullTierOnly, sh, sha256, testDisks } from "./_helpers.ts";
import {
  activate,
  deactivate,
  loadModule,
  restore,
  sessions,
  withMount,
  WRITE_MIX,
} from "./_bdsnap.ts";

const MKFS: Record<string, string> = {
  ext4: "mkfs.ext4 -q -F",
  xfs: "mkfs.xfs -q -f",
  ext2: "mkfs.ext2 -q -F",
  vfat: "mkfs.vfat",
  btrfs: "mkfs.btrfs -q -f",
};

async function roundTrip(fs: string, body: string): Promise<void> {
  const [dev] = testDisks();
  await loadModule();
  await sh(`${MKFS[fs]} ${dev} >/dev/null`);
  // Populate first, so that the session overwrites real data.
  await withMount(
    dev,
    fs,
    "for i in $(seq 1 30); do head -c $((i * 3001)) /dev/urandom > $M/p$i; done; sync",
  );
  const before = await sha256(dev);
  const known = (await sessions(dev)).length;
  await activate(dev);
  try {
    await withMount(dev, fs, body);
  } finally {
    await deactivate(dev);
  }
  const after = await sha256(dev);
  const list = await sessions(dev);
  assert.equal(list.length, known + 1, "one new session per mount");
  const s = list.at(-1)!;
  assert.equal(s.state, "closed");
  if (body !== "true") assert.notEqual(after, before, "the mount changed the device");
  await restore(dev, s.id);
  assert.equal(await sha256(dev), before, `${fs}: device differs from its pre-mount state`);
}

/** The core tier restores exactly on the two filesystems most servers run. */
const CORE = ["ext4", "xfs"];

for (const fs of Object.keys(MKFS)) {
  const name = `${fs}: write mix, unmount, restore: identical to before the mount`;
  Deno.test(name, CORE.includes(fs) ? {} : fullTierOnly, async () => {
    await roundTrip(fs, WRITE_MIX);
  });
}

Deno.test("ext4: mount and unmount with no writes, restore: identical", fullTierOnly, async () => {
  await roundTrip("ext4", "true");
});

Deno.test("xfs: mount and unmount with no writes, restore: identical", fullTierOnly, async () => {
  await roundTrip("xfs", "true");
});
