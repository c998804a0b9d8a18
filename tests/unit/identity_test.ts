import assert from "node:assert/strict";
import {
  blockIdentity,
  deviceIdentity,
  findDevice,
  type IdentitySources,
  partitionUuid,
  sameIdentity,
} from "../../lib/identity.ts";

/** A fake /sys, /run/udev/data and /dev with one disk `vdb` (254:16) and its partition vdb1. */
async function fakeSystem(disk: Uint8Array, files: Record<string, string> = {}) {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-identity-" });
  const src: IdentitySources = { sys: `${root}/sys`, udev: `${root}/udev`, dev: `${root}/dev` };
  const vdb = `${src.sys}/devices/pci0000:00/virtio2/block/vdb`;
  await Deno.mkdir(`${vdb}/vdb1`, { recursive: true });
  await Deno.mkdir(`${vdb}/queue`, { recursive: true });
  await Deno.mkdir(`${src.sys}/dev/block`, { recursive: true });
  await Deno.mkdir(`${src.sys}/class/block`, { recursive: true });
  await Deno.mkdir(src.udev, { recursive: true });
  await Deno.mkdir(src.dev, { recursive: true });
  await Deno.writeTextFile(`${vdb}/dev`, "254:16\n");
  await Deno.writeTextFile(`${vdb}/queue/logical_block_size`, "512\n");
  await Deno.writeTextFile(`${vdb}/vdb1/dev`, "254:17\n");
  await Deno.writeTextFile(`${vdb}/vdb1/partition`, "1\n");
  await Deno.symlink(vdb, `${src.sys}/dev/block/254:16`);
  await Deno.symlink(`${vdb}/vdb1`, `${src.sys}/dev/block/254:17`);
  await Deno.symlink(vdb, `${src.sys}/class/block/vdb`);
  await Deno.symlink(`${vdb}/vdb1`, `${src.sys}/class/block/vdb1`);
  await Deno.writeFile(`${src.dev}/vdb`, disk);
  for (const [path, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  return { root, src, vdb };
}

/** A disk image with a GPT whose first entry has the unique GUID bytes 0x10..0x1f. */
function gptDisk(): Uint8Array {
  const d = new Uint8Array(64 * 512);
  d.set(new TextEncoder().encode("EFI PART"), 512);
  const v = new DataView(d.buffer);
  v.setBigUint64(512 + 72, 2n, true); // entries at LBA 2
  v.setUint32(512 + 80, 128, true);
  v.setUint32(512 + 84, 128, true);
  for (let i = 0; i < 16; i++) d[1024 + 16 + i] = 0x10 + i;
  return d;
}

Deno.test("identity: a GPT partition's PARTUUID, as blkid prints it", async () => {
  const { root, src } = await fakeSystem(gptDisk());
  assert.equal(partitionUuid(`${src.dev}/vdb`, 1, 512), "13121110-1514-1716-1819-1a1b1c1d1e1f");
  assert.equal(partitionUuid(`${src.dev}/vdb`, 129, 512), null, "past the table");
  assert.equal(blockIdentity("254:17", src), "partuuid:13121110-1514-1716-1819-1a1b1c1d1e1f");
  await Deno.remove(root, { recursive: true });
});

Deno.test("identity: an MBR partition's PARTUUID is the disk signature and number", async () => {
  const d = new Uint8Array(512);
  new DataView(d.buffer).setUint32(440, 0x1234abcd, true);
  d[510] = 0x55;
  d[511] = 0xaa;
  const { root, src } = await fakeSystem(d);
  assert.equal(blockIdentity("254:17", src), "partuuid:1234abcd-01");
  await Deno.remove(root, { recursive: true });
});

Deno.test("identity: a disk by udev's WWN, else its serial; udev's partition UUID first", async () => {
  const { root, src, vdb } = await fakeSystem(new Uint8Array(512));
  assert.equal(blockIdentity("254:16", src), null, "nothing known: no identity");
  assert.equal(blockIdentity("254:17", src), null, "no table and no disk identity");
  await Deno.writeTextFile(`${vdb}/serial`, "bdsnap-disk0\n");
  assert.equal(blockIdentity("254:16", src), "serial:bdsnap-disk0");
  assert.equal(blockIdentity("254:17", src), "serial:bdsnap-disk0-part1");
  await Deno.writeTextFile(
    `${src.udev}/b254:16`,
    "S:disk/by-id/wwn-0x5000c500a1b2c3d4\nE:ID_SERIAL=QEMU_disk0\nE:ID_WWN=0x5000c500a1b2c3d4\n",
  );
  await Deno.writeTextFile(`${src.udev}/b254:17`, "E:ID_PART_ENTRY_UUID=ABCD-01\n");
  assert.equal(blockIdentity("254:16", src), "wwn:0x5000c500a1b2c3d4");
  assert.equal(blockIdentity("254:17", src), "partuuid:abcd-01");
  assert.equal(findDevice("wwn:0x5000c500a1b2c3d4", src), `${src.dev}/vdb`);
  assert.equal(findDevice("partuuid:abcd-01", src), `${src.dev}/vdb1`);
  assert.equal(findDevice("serial:elsewhere", src), null);
  await Deno.remove(root, { recursive: true });
});

Deno.test("identity: an image file by device, inode and path; renamed or remounted it still matches", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-identity-" });
  const img = `${dir}/disk.img`;
  await Deno.writeFile(img, new Uint8Array(4096));
  const st = await Deno.stat(img);
  const id = deviceIdentity(img)!;
  assert.equal(id, `file:${st.dev}:${st.ino}:${img}`);
  assert.equal(findDevice(id), img);
  assert.ok(sameIdentity(id, `file:${st.dev}:${st.ino}:${dir}/renamed.img`), "renamed");
  assert.ok(sameIdentity(id, `file:999:${st.ino}:${img}`), "another device number after a reboot");
  assert.ok(!sameIdentity(id, `file:999:${st.ino}:${dir}/other.img`), "both changed: another file");
  assert.ok(!sameIdentity(id, `file:${st.dev}:${st.ino! + 1}:${img}`), "replaced by another inode");
  assert.ok(!sameIdentity("serial:a", "serial:b"));
  await Deno.remove(img);
  await Deno.writeFile(img, new Uint8Array(4096)); // a new file under the old name
  assert.equal(findDevice(id), (await Deno.stat(img)).ino === st.ino ? img : null);
  assert.equal(deviceIdentity(`${dir}/missing`), null);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("identity: only printable ASCII reaches the module", async () => {
  const { root, src, vdb } = await fakeSystem(new Uint8Array(512));
  await Deno.writeTextFile(`${vdb}/serial`, "disk\u00e9\t0\n");
  assert.equal(blockIdentity("254:16", src), "serial:disk__0");
  await Deno.remove(root, { recursive: true });
});
