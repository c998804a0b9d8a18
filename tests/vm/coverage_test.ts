// vm: disks=2 disk-size=1G store-size=512M timeout=1800 tier=full
/**
 * Coverage and the discard policy (issue 20): every mount that writes to an
 * activated device runs a session of it, whatever sits in between (a
 * partition of an image's loop device, LUKS, LVM, a second loop device on the
 * same image), and discards are refused while a session is open instead of
 * being copied. Also refused: zoned devices at activation, and a restore
 * across writes made after the last unmount.
 *
 * Each case that restores ends with a whole-device (or whole-image) sha256
 * comparison. The test disks are attached with discard=unmap
 * (scripts/vm/qemu.ts): a discard that got past the module deallocates and
 * reads back zeroes, so the hash would see it; where a case relies on that,
 * the area it could hit holds random bytes first.
 *
 * The two disks are reused from case to case; each case removes the sessions
 * it added to the store when it ends (scoped), so it sees only its own.
 */
import assert from "node:assert/strict";
import { dmesg, sh, sha256, type ShResult, shTry, testDisks } from "./_helpers.ts";
import {
  activate,
  bdsnapTry,
  deactivate,
  loadModule,
  PASSWORD_FILE,
  restore,
  sessions,
} from "./_bdsnap.ts";
import { list as activated } from "../../ffi/control.ts";
import { type DeviceInfo, SESSION_STATE } from "../../ffi/uapi.ts";

const STORE = "/snapshot";
const MiB = 1 << 20;
/**
 * mkfs.ext4 without a discard of the whole device first (random bytes put in
 * the future free space stay there) and without lazy inode-table or journal
 * zeroing (a 1 GiB ext4 would otherwise write 16 MiB in the first session).
 */
const EXT4 = "mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0";

/** Session ids in the store now (a session's id is its directory name). */
async function storeIds(): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const e of Deno.readDir(STORE)) if (e.isDirectory) ids.add(e.name);
  return ids;
}

/** Kernel log line count now, for logSince. */
async function logMark(): Promise<number> {
  return (await dmesg()).split("\n").length - 1;
}

/** Kernel log lines since a mark. */
async function logSince(mark: number): Promise<string[]> {
  return (await dmesg()).split("\n").slice(mark);
}

/** Wait for a block device node (partitions and dm nodes appear asynchronously). */
async function waitBlock(path: string): Promise<void> {
  await sh(`for i in $(seq 100); do [ -b ${path} ] && exit 0; sleep 0.1; done; exit 1`);
}

/** Whether the module lists the device (path as activated) as activated: no CLI start-up. */
function isActivated(dev: string): boolean {
  return activated().some((d) => d.name === dev);
}

/** sha256 of `len` bytes at `off`, read with O_DIRECT (no page cache). */
async function rangeHash(dev: string, off: number, len: number): Promise<string> {
  const out = await sh(
    `dd if=${dev} bs=1M skip=${off / MiB} count=${len / MiB} iflag=direct status=none | sha256sum`,
  );
  return out.split(" ")[0];
}

/** Random bytes at [off, off+len) of a device, written past the page cache. */
async function randomAt(dev: string, off: number, len: number): Promise<void> {
  await sh(
    `openssl enc -aes-128-ctr -nosalt -pass pass:cov${off} -pbkdf2 -in /dev/zero 2>/dev/null ` +
      `| dd of=${dev} bs=1M seek=${off / MiB} count=${len / MiB} iflag=fullblock oflag=direct ` +
      `status=none`,
  );
}

/**
 * Run one case with a list of clean-up steps it adds to as it goes; they run
 * in reverse order afterwards, also when it failed, so a failed case leaves
 * no mount, mapping or activation behind for the next one. Then the sessions
 * the case added to the store are removed: a case that failed with a full
 * store must not fail the next ones, and each case sees only its own
 * sessions (the disks are reused).
 */
async function scoped(
  fn: (later: (step: string | (() => Promise<unknown>)) => void) => Promise<void>,
) {
  const known = await storeIds();
  const steps: (string | (() => Promise<unknown>))[] = [];
  try {
    await fn((s) => steps.push(s));
  } finally {
    for (const s of steps.reverse()) {
      try {
        if (typeof s === "string") await shTry(s);
        else await s();
      } catch (e) {
        console.log(`clean-up step failed: ${e}`);
      }
    }
    const still = activated();
    if (still.length > 0) {
      console.log(`still activated, store left as it is: ${still.map((d) => d.name).join(" ")}`);
    } else {
      for (const id of await storeIds()) {
        if (known.has(id)) continue;
        await Deno.remove(`${STORE}/${id}`, { recursive: true })
          .catch((e) => console.log(`cannot remove session ${id}: ${e}`));
      }
    }
  }
}

/** Clean-up: deactivate the device if it is still activated. */
function deactivateLater(dev: string): () => Promise<unknown> {
  return async () => {
    if (isActivated(dev)) await bdsnapTry(`deactivate ${dev} --password-file ${PASSWORD_FILE}`);
  };
}

const WRITE = "dd if=/dev/urandom of=$M/data bs=64k count=16 status=none; " +
  "for i in 1 2 3; do echo $i > $M/small$i; done; sync";

Deno.test("a: a partition of an activated image's loop device (losetup -P) runs a session of the image", async () => {
  await loadModule();
  const img = "/var/tmp/parted.img";
  await sh(`rm -f ${img} && truncate -s 128M ${img}`);
  await sh(`printf 'label: gpt\\n,\\n' | sfdisk -q ${img}`);
  await scoped(async (later) => {
    const loop = (await sh(`losetup -P -f --show ${img}`)).trim();
    later(`losetup -d ${loop}`);
    const part = `${loop}p1`;
    await waitBlock(part);
    await sh(`${EXT4} ${part} && sync`);
    const before = await sha256(img);

    await activate(img);
    later(deactivateLater(img));
    await sh(`mkdir -p /mnt/t && mount -t ext4 ${part} /mnt/t`);
    later("umount /mnt/t");
    await sh(`M=/mnt/t; ${WRITE}`);
    await sh("umount /mnt/t");
    await deactivate(img);

    const list = await sessions(img);
    assert.equal(list.length, 1, `one session of the image: ${JSON.stringify(list)}`);
    assert.equal(list[0].device, img);
    assert.equal(list[0].state, "closed");
    assert.ok((list[0].records ?? 0) > 0, "the partition's writes were saved");
    await sh(`losetup -d ${loop}`);
    assert.notEqual(await sha256(img), before, "the mount changed the image");
    await restore(img, list[0].id);
    assert.equal(await sha256(img), before);
  });
});

Deno.test("b: LUKS on an activated disk: the mapping's mount runs a session of the disk", async () => {
  await loadModule();
  const [dev] = testDisks();
  const key = "/run/coverage-luks.key";
  await sh(`mkdir -p /run/cryptsetup && head -c 64 /dev/urandom > ${key}`);
  // pbkdf2 with few iterations: argon2 takes far too long under emulation.
  await sh(
    `cryptsetup luksFormat --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 ` +
      `--batch-mode --key-file ${key} ${dev}`,
  );
  await scoped(async (later) => {
    const open = `cryptsetup open --key-file ${key} ${dev} covcrypt`;
    await sh(open);
    later("cryptsetup close covcrypt");
    await sh(`${EXT4} /dev/mapper/covcrypt && cryptsetup close covcrypt`);
    const before = await sha256(dev);

    await activate(dev);
    later(deactivateLater(dev));
    await sh(open);
    await sh("mkdir -p /mnt/t && mount -t ext4 /dev/mapper/covcrypt /mnt/t");
    later("umount /mnt/t");
    await sh(`M=/mnt/t; ${WRITE}`);
    await sh("umount /mnt/t && cryptsetup close covcrypt");
    await deactivate(dev);

    const list = await sessions(dev);
    assert.equal(list.length, 1, `one session of the disk: ${JSON.stringify(list)}`);
    assert.equal(list[0].state, "closed");
    assert.ok((list[0].records ?? 0) > 0, "the mapping's writes were saved");
    await restore(dev, list[0].id);
    assert.equal(await sha256(dev), before);
  });
});

Deno.test("c: LVM on an activated PV: two LVs mounted, one session that closes with the last unmount", async () => {
  await loadModule();
  const [, dev] = testDisks();
  // A private LVM configuration: only this disk, no udev (none runs in the
  // guest), no dmeventd or lvmpolld, no metadata backups in /etc.
  const dir = "/run/coverage-lvm";
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/lvm.conf`,
    `devices {\n  filter = [ "a|^${dev}$|", "r|.*|" ]\n  obtain_device_list_from_udev = 0\n` +
      `  use_devicesfile = 0\n}\nactivation {\n  udev_sync = 0\n  udev_rules = 0\n` +
      `  monitoring = 0\n}\nglobal {\n  use_lvmpolld = 0\n}\nbackup {\n  backup = 0\n` +
      `  archive = 0\n}\n`,
  );
  const lvm = (cmd: string) => sh(`lvm ${cmd}`, { LVM_SYSTEM_DIR: dir });
  const [a, b] = ["/dev/mapper/covvg-a", "/dev/mapper/covvg-b"];
  await sh(`wipefs -q -a ${dev}`);
  await lvm(`pvcreate -q -y ${dev}`);
  await lvm(`vgcreate -q covvg ${dev}`);
  await scoped(async (later) => {
    later(() => shTry("lvm vgchange -q -an covvg", { LVM_SYSTEM_DIR: dir }));
    await lvm("lvcreate -q -y -L 256M -n a covvg");
    await lvm("lvcreate -q -y -L 256M -n b covvg");
    await waitBlock(a);
    await waitBlock(b);
    await sh(`${EXT4} ${a} && ${EXT4} ${b} && sync`);
    // The LVs stay active across activation: dm devices that existed before
    // the disk was activated must be covered too.
    const before = await sha256(dev);

    await activate(dev);
    later(deactivateLater(dev));
    await sh(`mkdir -p /mnt/a /mnt/b && mount -t ext4 ${a} /mnt/a && mount -t ext4 ${b} /mnt/b`);
    later("umount /mnt/a");
    later("umount /mnt/b");
    await sh(`M=/mnt/a; ${WRITE}`);
    await sh(`M=/mnt/b; ${WRITE}`);
    await sh("umount /mnt/a");
    let list = await sessions(dev);
    assert.equal(list.length, 1, `one session for both LVs: ${JSON.stringify(list)}`);
    assert.equal(list[0].state, "open", "the second LV is still mounted");
    await sh("dd if=/dev/urandom of=/mnt/b/more bs=64k count=16 status=none && sync");
    await sh("umount /mnt/b");
    list = await sessions(dev);
    assert.equal(list.length, 1, JSON.stringify(list));
    assert.equal(list[0].state, "closed", "closed with the last unmount");
    assert.ok((list[0].records ?? 0) > 0);

    await lvm("vgchange -q -an covvg");
    await deactivate(dev);
    await restore(dev, list[0].id);
    assert.equal(await sha256(dev), before);
  });
});

Deno.test("d: two loop devices on one image: the second mount is refused while the first is mounted", async () => {
  await loadModule();
  const img = "/var/tmp/twice.img";
  await sh(`rm -f ${img} && truncate -s 128M ${img} && ${EXT4} ${img}`);
  await scoped(async (later) => {
    const l1 = (await sh(`losetup -f --show ${img}`)).trim();
    later(`losetup -d ${l1}`);
    const l2 = (await sh(`losetup -f --show ${img}`)).trim();
    later(`losetup -d ${l2}`);
    assert.notEqual(l1, l2);
    const before = await sha256(img);

    await activate(img);
    later(deactivateLater(img));
    await sh(`mkdir -p /mnt/d1 /mnt/d2 && mount -t ext4 ${l1} /mnt/d1`);
    later("umount /mnt/d1");
    later("umount /mnt/d2");
    await sh(`M=/mnt/d1; ${WRITE}`);
    let list = await sessions(img);
    assert.equal(list.length, 1, JSON.stringify(list));
    assert.equal(list[0].state, "open");

    const mark = await logMark();
    const second = await shTry(`mount -t ext4 ${l2} /mnt/d2`);
    assert.notEqual(second.code, 0, `the mount of ${l2} must be refused while ${l1} is mounted`);
    // The reason, naming the loop device the image is mounted through (as
    // loopN or as its major:minor).
    const first = [
      l1.replace("/dev/", ""),
      (await sh(`cat /sys/block/${l1.replace("/dev/", "")}/dev`)).trim(),
    ];
    const log = await logSince(mark);
    const why = log.filter((l) =>
      /bdsnap/.test(l) && /loop/.test(l) && first.some((n) => new RegExp(`\\b${n}\\b`).test(l))
    );
    assert.ok(
      why.length > 0,
      `the kernel log says why, naming ${first.join(" or ")}:\n${log.join("\n")}`,
    );

    await sh("umount /mnt/d1");
    await sh(`mount -t ext4 ${l2} /mnt/d2`);
    await sh("M=/mnt/d2; dd if=/dev/urandom of=$M/second bs=64k count=16 status=none; sync");
    await sh("umount /mnt/d2");
    await deactivate(img);
    list = await sessions(img);
    assert.equal(list.length, 2, `one session per mount: ${JSON.stringify(list)}`);
    assert.deepEqual(list.map((s) => s.state), ["closed", "closed"]);

    await sh(`losetup -d ${l1} && losetup -d ${l2}`);
    await restore(img, list[0].id);
    assert.equal(await sha256(img), before, "the image as before the first session");
  });
});

/** The device as the module lists it now (the control device: no CLI start-up). */
function liveDevice(dev: string): DeviceInfo {
  const d = activated().find((x) => x.name === dev);
  assert.ok(d, `${dev} is activated`);
  return d;
}

Deno.test("e1: fstrim on a mostly empty 1 GiB ext4: refused, nothing copied, the session stays open", async () => {
  await loadModule();
  const [dev] = testDisks();
  // Random bytes in what becomes free space: a discard let through would zero them.
  await randomAt(dev, 384 * MiB, 128 * MiB);
  await sh(`${EXT4} ${dev}`);
  await sh(
    `mkdir -p /mnt/t && mount -t ext4 ${dev} /mnt/t && ` +
      `for i in 1 2 3 4 5; do head -c 12345 /dev/urandom > /mnt/t/f$i; done && umount /mnt/t`,
  );
  // The session writes only the superblock and a few journal blocks.
  await trimCase(dev, "ext4", "", 1 * MiB);
});

Deno.test("e2: btrfs with async discard, files written and deleted, then fstrim: refused, nothing copied", async () => {
  await loadModule();
  const [dev] = testDisks();
  await randomAt(dev, 384 * MiB, 128 * MiB);
  await sh(`mkfs.btrfs -q -f -K ${dev}`); // -K: no discard at mkfs
  // The deleted files' extents are queued for async discard, which issues
  // them only after BTRFS_DISCARD_DELAY (120 s) and drops what is still
  // queued at unmount. Waiting would cost minutes of VM time for a path
  // fstrim takes too (btrfs_discard_extent -> blkdev_issue_discard), so
  // fstrim, which trims the whole free space, stands for both here.
  const files = "for i in $(seq 1 10); do head -c 32768 /dev/urandom > /mnt/t/g$i; done; sync; " +
    "rm -f /mnt/t/g[1-5]; sync";
  const queued = async () => {
    const uuid = (await sh(`blkid -s UUID -o value ${dev}`)).trim();
    const n = await Deno.readTextFile(`/sys/fs/btrfs/${uuid}/discard/discardable_bytes`);
    assert.ok(Number(n.trim()) > 0, "async discard is on: the freed extents are queued");
  };
  // btrfs writes its metadata copy-on-write (16 KiB tree blocks, twice, at
  // every commit) into fresh space, and each first write of a block saves its
  // pre-image: that and the files, not the discards, is what the session
  // copies. Copying the discarded free space would be hundreds of MiB.
  await trimCase(dev, "btrfs", "discard=async", 8 * MiB, async () => {
    await sh(files);
    await queued();
  });
});

/**
 * Activate, mount, `prepare`, fstrim, unmount, restore. The refusal must show
 * in what matters first: the session stays open, saves next to nothing, and
 * the restore is exact (the free space holds random bytes, which a discard
 * that reached the device would have zeroed), and the kernel log says
 * nothing was trimmed. fstrim itself reports success: the block layer's
 * discard helper treats a device's EOPNOTSUPP as success (discard is
 * advisory), on 6.1 and 6.12 alike, so its exit status proves nothing.
 */
async function trimCase(
  dev: string,
  fs: string,
  options: string,
  maxBytes: number,
  prepare?: () => Promise<void>,
) {
  const before = await sha256(dev);
  await scoped(async (later) => {
    await activate(dev);
    later(deactivateLater(dev));
    await sh(`mount -t ${fs} ${options ? `-o ${options}` : ""} ${dev} /mnt/t`);
    later("umount /mnt/t");
    const mark = await logMark();
    if (prepare) await prepare();
    const trim: ShResult = await shTry("fstrim -v /mnt/t");
    assert.ok(
      (await logSince(mark)).some((l) =>
        /discard and secure erase are refused .* nothing is trimmed/.test(l)
      ),
      `${fs}: the kernel log says the discards were refused (fstrim: ${trim.stdout}${trim.stderr})`,
    );
    const live = liveDevice(dev);
    assert.equal(live.state, SESSION_STATE.OPEN, `${fs}: the session survives fstrim`);
    assert.equal(live.error, 0, `${fs}: the session did not fail`);
    await sh("umount /mnt/t");
    await deactivate(dev);

    const list = await sessions(dev);
    assert.equal(list.length, 1, JSON.stringify(list));
    assert.equal(list[0].state, "closed");
    assert.ok(
      (list[0].bytes ?? Infinity) < maxBytes,
      `${fs}: ${list[0].bytes} bytes saved, expected < ${maxBytes}`,
    );
    await restore(dev, list[0].id);
    assert.equal(await sha256(dev), before, `${fs}: restored exactly`);
  });
}

Deno.test("f: discard and secure erase on the raw device change nothing during a session, discard works outside it", async () => {
  await loadModule();
  const [, dev] = testDisks();
  const name = dev.replace("/dev/", "");
  const max = Number(
    (await Deno.readTextFile(`/sys/block/${name}/queue/discard_max_bytes`)).trim(),
  );
  assert.ok(max > 0, `${dev} supports discard (QEMU discard=unmap): discard_max_bytes ${max}`);
  // A 256 MiB ext4 at the start; the range at 512 MiB is outside it and
  // holds random bytes, which a discard that got through would zero.
  const [off, len] = [512 * MiB, 1 * MiB];
  await sh(`${EXT4} ${dev} 256M`);
  await randomAt(dev, off, len);
  const bytes = await rangeHash(dev, off, len);
  const discard = `blkdiscard -f -o ${off} -l ${len} ${dev}`;

  await scoped(async (later) => {
    await activate(dev);
    later(deactivateLater(dev));
    await sh(`mount -t ext4 ${dev} /mnt/t && echo x > /mnt/t/x && sync`);
    later("umount /mnt/t");
    // -f: blkdiscard opens the device O_EXCL otherwise, which the mount holds.
    // It exits 0 either way (the block layer turns a device's EOPNOTSUPP for
    // discard into success): the range and the log are what tell.
    const mark = await logMark();
    await shTry(discard);
    assert.ok(
      (await logSince(mark)).some((l) => /discard and secure erase are refused/.test(l)),
      "the kernel log says the discard was refused",
    );
    assert.equal(await rangeHash(dev, off, len), bytes, "the discarded range is unchanged");
    // virtio-blk has no secure erase at all (the kernel itself answers
    // EOPNOTSUPP before a bio exists), so this part cannot tell the module's
    // refusal from the device's; the plain discard is the proof.
    const secure = await shTry(`blkdiscard -f -s -o ${off} -l ${len} ${dev}`);
    assert.notEqual(secure.code, 0, `secure erase during a session must fail: ${secure.stdout}`);
    assert.equal(await rangeHash(dev, off, len), bytes, "unchanged by the secure erase");
    assert.equal(liveDevice(dev).state, SESSION_STATE.OPEN, "the session is still open");
    await sh("umount /mnt/t");
    await deactivate(dev);
  });

  // Outside a session the same discard goes through: the refusal was the module's.
  await sh(discard);
  const zeroes = (await sh(`head -c ${len} /dev/zero | sha256sum`)).split(" ")[0];
  assert.equal(await rangeHash(dev, off, len), zeroes, "discarded outside a session");
});

Deno.test("g: a zoned device is refused at activation", async () => {
  await loadModule();
  await sh("modprobe null_blk nr_devices=1 zoned=1 memory_backed=1 gb=1");
  await scoped(async (later) => {
    later("rmmod null_blk");
    const dev = "/dev/nullb0";
    await waitBlock(dev);
    assert.equal((await Deno.readTextFile("/sys/block/nullb0/queue/zoned")).trim(), "host-managed");
    later(deactivateLater(dev));
    const r = await bdsnapTry(`activate ${dev} --password-file ${PASSWORD_FILE}`);
    assert.notEqual(r.code, 0, `activation of a zoned device must fail: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /zoned/i);
    assert.ok(!isActivated(dev), "not activated");
  });
});

Deno.test("h: writes after the last unmount: the restore across them is refused and writes nothing", async () => {
  await loadModule();
  const [, dev] = testDisks();
  await sh(`${EXT4} ${dev}`);
  await scoped(async (later) => {
    await activate(dev);
    later(deactivateLater(dev));
    await sh(`mount -t ext4 ${dev} /mnt/t`);
    later("umount /mnt/t");
    await sh(`M=/mnt/t; ${WRITE}`);
    await sh("umount /mnt/t");
    // What an e2fsck -y or a stray dd does: raw writes after the session closed.
    await sh(`dd if=/dev/urandom of=${dev} bs=4k count=4 seek=150000 oflag=direct status=none`);
    await deactivate(dev);

    const now = await sha256(dev);
    const r = await bdsnapTry(`restore ${dev} --session latest --yes --json`);
    assert.notEqual(r.code, 0, `the restore must be refused: ${r.stdout}${r.stderr}`);
    const err = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}");
    assert.equal(err.error?.code, "unmounted-writes", r.stdout + r.stderr);
    assert.equal(await sha256(dev), now, "the refused restore wrote nothing");
  });
});
