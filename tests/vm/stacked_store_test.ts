// vm: disks=2 disk-size=256M store-size=128M timeout=900
/**
 * Store placement (issue 17): the store must never be written through the
 * activated device, or the first flush deadlocks (store fsync → loop →
 * backing file's journal → origin, held until the store syncs). The module
 * walks the store root's stack (filesystem → block device → loop backing
 * file → dm/md slaves) at activation and again at every session start.
 *
 * The store root (/run/bstore, the module's store_root) is a directory that
 * each case bind-mounts the store it tries on. A symlink would be refused:
 * the module opens the root once per activation, without following one,
 * and holds it, so a store root that changes after activation does not
 * move the sessions (the last tests). Activation refusals come back as
 * errno and a reason in the kernel log.
 */
import assert from "node:assert/strict";
import { cstring, ErrnoError, syscall } from "../../ffi/libc.ts";
import { list } from "../../ffi/control.ts";
import { dmesg, moduleLoaded, modulePath, sh, shTry, testDisks } from "./_helpers.ts";
import { bdsnapTry, loadModule, PASSWORD_FILE, unloadModule } from "./_bdsnap.ts";

const ROOT = "/run/bstore";
const PASSWORD = "correct horse battery staple";

/** Bind dir on the store root, alone. */
async function useStore(dir: string): Promise<void> {
  await sh(
    `mkdir -p ${ROOT} && while mountpoint -q ${ROOT}; do umount ${ROOT}; done && ` +
      `mount --bind ${dir} ${ROOT}`,
  );
}

async function setup(): Promise<void> {
  await sh("mkdir -p /mnt/a /mnt/s /mnt/o /mnt/t /mnt/dm");
  await useStore("/snapshot");
  await loadModule(`--store ${ROOT}`);
  const root = (await Deno.readTextFile("/sys/module/bdsnap/parameters/store_root")).trim();
  assert.equal(root, ROOT);
}

function call(nr: "activate" | "deactivate", path: string): string {
  const p = "/sys/module/bdsnap/parameters";
  const n = Number(Deno.readTextFileSync(`${p}/nr_${nr}`).trim());
  try {
    syscall(nr[0], n, cstring(path), cstring(PASSWORD));
  } catch (e) {
    if (e instanceof ErrnoError) return e.code;
    throw e;
  }
  return "OK";
}

interface Dev {
  device: string;
  session: string | null;
  unmountedWrites: number;
}

/** The activated devices, from the control device (no CLI start-up under TCG). */
function devices(): Dev[] {
  return list().map((d) => ({
    device: d.name,
    session: d.sessionId === "" ? null : d.sessionId,
    unmountedWrites: Number(d.unmountedWrites),
  }));
}

/** meta.json of every session of a device in a store directory. */
async function storeSessions(dir: string, dev: string): Promise<{ id: string; state: string }[]> {
  const out = [];
  for (const e of await storeEntries(dir)) {
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/${e}/meta.json`));
    if (meta.device === dev) out.push({ id: meta.id, state: meta.state });
  }
  return out;
}

/** Entries of a store directory other than lost+found. */
async function storeEntries(dir: string): Promise<string[]> {
  return (await sh(`ls -A ${dir}`)).split("\n").filter((x) => x && x !== "lost+found");
}

/** Kernel log lines since mark (a line count). */
async function logSince(mark: number): Promise<string> {
  return (await dmesg()).split("\n").slice(mark).join("\n");
}

async function logMark(): Promise<number> {
  return (await dmesg()).split("\n").length - 1;
}

async function haveDmsetup(): Promise<boolean> {
  return (await shTry("dmsetup version")).code === 0;
}

/** D's filesystem at /mnt/a holding a loop-mounted store image at /mnt/s. */
async function loopStoreOn(dev: string): Promise<string> {
  await sh(`mkfs.ext4 -q -F ${dev} && mount ${dev} /mnt/a`);
  await sh("truncate -s 48M /mnt/a/store.img && mkfs.ext4 -q -F /mnt/a/store.img");
  const loop = (await sh("losetup -f --show /mnt/a/store.img")).trim();
  await sh(`mount ${loop} /mnt/s`);
  return loop;
}

async function dropLoopStore(loop: string): Promise<void> {
  await useStore("/snapshot");
  await sh(`umount /mnt/s && losetup -d ${loop} && umount /mnt/a`);
}

Deno.test("a store on a loop image kept on the activated filesystem: activation refused (EXDEV)", async () => {
  await setup();
  const [d] = testDisks();
  const loop = await loopStoreOn(d);
  try {
    await sh("truncate -s 16M /mnt/a/image.img");
    await useStore("/mnt/s");
    const mark = await logMark();
    assert.equal(call("activate", d), "EXDEV", "the disk under the store's loop image");
    // An image on the filesystem that also holds the store's image.
    assert.equal(call("activate", "/mnt/a/image.img"), "EXDEV", "an image beside the store's");
    // Through the CLI (D is mounted: it would freeze it for a session) the
    // kernel's refusal comes first, and nothing is frozen or activated.
    const cli = await bdsnapTry(`activate ${d} --password-file ${PASSWORD_FILE}`);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stderr, /the snapshot store .* lives on .* put the store on another device/);
    assert.deepEqual(devices(), [], "nothing activated");
    assert.deepEqual(await storeEntries("/mnt/s"), [], "no session directory");
    const log = await logSince(mark);
    const name = d.replace("/dev/", "");
    assert.match(
      log,
      new RegExp(
        `${d}: not activated: the store root ${ROOT} is on ext4 -> loop\\d+ -> ext4 -> ${name}, ` +
          `which overlaps the activated device \\(-EXDEV\\)`,
      ),
    );
    assert.match(
      log,
      /image\.img: not activated: .*loop\d+, whose backing file is on the filesystem/,
    );
  } finally {
    await dropLoopStore(loop);
  }
});

Deno.test("a store root remounted onto the image's filesystem after activation: sessions stay on the store held since activation", async () => {
  await setup();
  const [d] = testDisks();
  const loop = await loopStoreOn(d);
  const img = "/mnt/a/origin.img";
  let origin = "";
  try {
    await sh(`truncate -s 64M ${img} && mkfs.ext4 -q -F ${img}`);
    const before = await storeEntries("/snapshot");
    assert.equal(call("activate", img), "OK", "the store is on the store disk at activation");
    // What would deadlock if followed: the root now shows the loop store.
    await sh(`mount --bind /mnt/s ${ROOT}`);
    origin = (await sh(`losetup -f --show ${img}`)).trim();
    await sh(`mount ${origin} /mnt/o`);
    await sh("dd if=/dev/urandom of=/mnt/o/f bs=64k count=16 status=none && timeout 120 sync");
    const [dev] = devices().filter((x) => x.device === img);
    assert.ok(dev?.session, "a session is open");
    await sh("umount /mnt/o");
    assert.deepEqual(await storeEntries("/mnt/s"), [], "nothing on the store mounted later");
    const added = (await storeEntries("/snapshot")).filter((e) => !before.includes(e));
    assert.equal(added.length, 1, "the session is on the store held since activation");
    const meta = JSON.parse(await Deno.readTextFile(`/snapshot/${added[0]}/meta.json`));
    assert.equal(meta.state, "closed");
    assert.ok(meta.records > 0, "its pre-images were saved");
  } finally {
    await shTry("umount /mnt/o");
    if (origin) await sh(`losetup -d ${origin}`);
    call("deactivate", img);
    await dropLoopStore(loop);
  }
});

Deno.test("a store on tmpfs: refused with ENOTBLK; tmpfs mounted on the root later takes nothing", async () => {
  await setup();
  const [, e] = testDisks();
  await sh("mount -t tmpfs -o size=32m,mode=0700 tmpfs /mnt/t");
  try {
    await useStore("/mnt/t");
    const mark = await logMark();
    assert.equal(call("activate", e), "ENOTBLK");
    assert.deepEqual(devices(), []);
    assert.match(
      await logSince(mark),
      new RegExp(
        `${e}: not activated: the store root ${ROOT} is on tmpfs, which has no block device`,
      ),
    );

    // Activated with a real store, then tmpfs is mounted on the store root.
    await sh(`mkfs.ext4 -q -F ${e}`);
    await useStore("/snapshot");
    const before = await storeEntries("/snapshot");
    assert.equal(call("activate", e), "OK");
    await sh(`mount --bind /mnt/t ${ROOT}`);
    await sh(`mount ${e} /mnt/o && echo x > /mnt/o/x && timeout 120 sync && umount /mnt/o`);
    assert.deepEqual(await storeEntries("/mnt/t"), [], "nothing written to tmpfs");
    const added = (await storeEntries("/snapshot")).filter((x) => !before.includes(x));
    assert.equal(added.length, 1, "the session went to the store held since activation");
    assert.equal(call("deactivate", e), "OK");
  } finally {
    await useStore("/snapshot");
    await sh("umount /mnt/t");
  }
});

Deno.test("a store root that is a symlink, group-writable, or not root's: activation and load refused", async () => {
  await setup();
  const [, e] = testDisks();
  await sh("mkdir -p /snapshot/real && chmod 0700 /snapshot/real");
  try {
    await sh(`while mountpoint -q ${ROOT}; do umount ${ROOT}; done && rmdir ${ROOT}`);
    await sh(`ln -s /snapshot/real ${ROOT}`);
    let mark = await logMark();
    assert.equal(call("activate", e), "ELOOP", "a symlink");
    assert.match(await logSince(mark), new RegExp(`the store root ${ROOT} is a symbolic link`));
    const cli = await bdsnapTry(`activate ${e} --password-file ${PASSWORD_FILE}`);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stderr, /store root .* is a symbolic link/);
    await sh(`rm ${ROOT} && mkdir ${ROOT} && mount --bind /snapshot/real ${ROOT}`);

    await sh("chmod 0770 /snapshot/real");
    mark = await logMark();
    assert.equal(call("activate", e), "EACCES", "group-writable");
    assert.match(await logSince(mark), /is writable by group or others/);
    await sh("chmod 0700 /snapshot/real && chown 65534 /snapshot/real");
    mark = await logMark();
    assert.equal(call("activate", e), "EACCES", "owned by nobody");
    assert.match(await logSince(mark), /is not owned by root/);
    assert.deepEqual(devices(), [], "nothing activated");
    assert.deepEqual(await storeEntries("/snapshot/real"), [], "nothing created in it");

    // Loading on such a root: the CLI refuses before loading, the module too.
    await sh(`umount ${ROOT}`);
    await unloadModule();
    const load = await bdsnapTry(`load --store /snapshot/real`);
    assert.equal(load.code, 1, load.stdout + load.stderr);
    assert.match(load.stderr, /store root \/snapshot\/real is owned by uid 65534, not root/);
    assert.equal(await moduleLoaded(), false, "the CLI loaded nothing");
    mark = await logMark();
    const insmod = await shTry(`insmod ${modulePath()} store_root=/snapshot/real`);
    assert.notEqual(insmod.code, 0, "the module refuses to load on it");
    assert.match(await logSince(mark), /the store root \/snapshot\/real is not owned by root/);
    assert.equal(await moduleLoaded(), false);
    await setup();

    await sh(`chown 0 /snapshot/real && mount --bind /snapshot/real ${ROOT}`);
    assert.equal(call("activate", e), "OK", "a root-owned 0700 directory is fine");
    assert.equal(call("deactivate", e), "OK");
  } finally {
    await shTry(`rm -f ${ROOT}; mkdir -p ${ROOT}`);
    await useStore("/snapshot");
    await shTry("rm -rf /snapshot/real");
  }
});

Deno.test("a dm-linear store over the activated disk or partition: EXDEV; over another partition: fine", async () => {
  await setup();
  if (!(await haveDmsetup())) {
    console.log("dmsetup not available in the guest: skipped");
    return;
  }
  const [d, e] = testDisks();
  // Over the whole disk.
  await sh(`dmsetup create bss --table "0 $(blockdev --getsz ${d}) linear ${d} 0"`);
  try {
    await sh("mkfs.ext4 -q -F /dev/mapper/bss && mount /dev/mapper/bss /mnt/dm");
    await useStore("/mnt/dm");
    const mark = await logMark();
    assert.equal(call("activate", d), "EXDEV");
    assert.match(
      await logSince(mark),
      new RegExp(
        `the store root ${ROOT} is on ext4 -> dm-\\d+ -> ${d.replace("/dev/", "")}, which overlaps`,
      ),
    );
    assert.deepEqual(await storeEntries("/mnt/dm"), []);
  } finally {
    await useStore("/snapshot");
    await shTry("umount /mnt/dm");
    await sh("dmsetup remove bss");
  }

  // Partitions matter: a store on e2 does not involve e1, but e (the whole disk) it does.
  await sh(
    `printf 'label: dos\\n,100M\\n,\\n' | sfdisk -q ${e} && blockdev --rereadpt ${e} || true`,
  );
  const [p1, p2] = [`${e}1`, `${e}2`];
  await sh(`for i in $(seq 50); do [ -b ${p2} ] && break; sleep 0.1; done; test -b ${p2}`);
  await sh(`dmsetup create bss2 --table "0 $(blockdev --getsz ${p2}) linear ${p2} 0"`);
  try {
    await sh("mkfs.ext4 -q -F /dev/mapper/bss2 && mount /dev/mapper/bss2 /mnt/dm");
    await useStore("/mnt/dm");
    assert.equal(call("activate", p1), "OK", "another partition of the disk");
    assert.equal(call("deactivate", p1), "OK");
    assert.equal(call("activate", e), "EXDEV", "the whole disk holds the store's partition");
  } finally {
    await useStore("/snapshot");
    await shTry("umount /mnt/dm");
    await sh("dmsetup remove bss2");
    await sh(`wipefs -q -a ${e} && blockdev --rereadpt ${e} || true`);
  }
});

Deno.test("a legitimate stacked store (dm-linear on another disk) still takes sessions", async () => {
  await setup();
  const [d, e] = testDisks();
  const dm = await haveDmsetup();
  if (dm) {
    await sh(`dmsetup create bss3 --table "0 $(blockdev --getsz ${e}) linear ${e} 0"`);
    await sh("mkfs.ext4 -q -F /dev/mapper/bss3 && mount /dev/mapper/bss3 /mnt/dm");
  }
  const store = dm ? "/mnt/dm" : "/snapshot";
  try {
    await useStore(store);
    await sh(`mkfs.ext4 -q -F ${d}`);
    assert.equal(call("activate", d), "OK");
    await sh(`mount ${d} /mnt/o && dd if=/dev/urandom of=/mnt/o/f bs=64k count=16 status=none`);
    await sh("timeout 120 sync && umount /mnt/o");
    assert.equal(call("deactivate", d), "OK");
    const found = await storeSessions(store, d);
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.equal(found[0].state, "closed");
  } finally {
    await useStore("/snapshot");
    if (dm) {
      await shTry("umount /mnt/dm");
      await sh("dmsetup remove bss3");
    }
  }
});
