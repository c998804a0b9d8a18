// vm: disks=1 disk-size=320M store-size=1G timeout=1500 tier=full
/**
 * `bdsnap view` (issue 22): read-only devices of pre-mount states while the
 * device is mounted and written.
 * - fio writing: the open session's view hashes to the pre-mount sha256,
 *   three times during the writing;
 * - a chain: the view of session 1 while session 2 is open;
 * - mounted read-only (ext4 noload): the file tree as copied before mount 1;
 * - export while mounted: the image equals the state before mount 1;
 * - lifetimes: deactivate and restore refused while a view exists, a view
 *   removed while it is read, the device usable and deactivatable after;
 * - an image file behind a loop device.
 * Full tier (the file directive) until it has passed on every kernel of the matrix.
 */
import assert from "node:assert/strict";
import { sh, sha256, shTry, testDisks } from "./_helpers.ts";
import { bdsnap, bdsnapTry, deactivate, loadModule, PASSWORD_FILE, sessions } from "./_bdsnap.ts";

const M = "/mnt/view-origin";
const V = "/mnt/view";
const TREE = `find . -type f | LC_ALL=C sort | xargs -d '\\n' sha256sum`;

async function view(args: string): Promise<string> {
  return JSON.parse(await bdsnap(`view ${args} --json`)).view;
}

async function viewList(): Promise<Array<{ device: string }>> {
  return JSON.parse(await bdsnap("view --list --json"));
}

Deno.test({
  name: "view: exact while fio writes, a chain, mounted read-only, export, removal, lifetimes",

  fn: async () => {
    const [dev] = testDisks();
    await loadModule();
    await sh(`mkfs.ext4 -q -F ${dev} && mkdir -p ${M} ${V} && mount ${dev} ${M}`);
    await sh(`for i in $(seq 1 40); do head -c $((i * 7000)) /dev/urandom > ${M}/f$i; done`);
    await sh(`umount ${M}`);
    const h0 = await sha256(dev);
    await sh(`mount -o ro ${dev} ${M}`);
    const tree0 = await sh(`cd ${M} && ${TREE}`);
    await sh(`umount ${M}`);
    assert.equal(await sha256(dev), h0, "a read-only mount changes nothing");

    await bdsnap(`activate ${dev} --password-file ${PASSWORD_FILE}`);
    await sh(`mount ${dev} ${M} && for i in $(seq 1 20); do echo changed > ${M}/f$i; done`);
    await sh(`umount ${M}`);
    const h1 = await sha256(dev);
    const [s1] = await sessions(dev);

    await sh(`mount ${dev} ${M}`);
    const fio = new Deno.Command("fio", {
      args: [
        "--name=w",
        `--filename=${M}/fio.dat`,
        "--size=48M",
        "--rw=randwrite",
        "--bs=16k",
        "--ioengine=psync",
        "--fsync=16",
        "--time_based",
        "--runtime=600",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const views: string[] = [];
    try {
      await new Promise((r) => setTimeout(r, 3000));
      const open = await view(dev);
      views.push(open);
      for (let i = 0; i < 3; i++) {
        assert.equal(
          await sha256(open),
          h1,
          `the open session's view, read ${i + 1} while fio wrote`,
        );
      }
      const old = await view(`${dev} --session ${s1.id}`);
      views.push(old);
      assert.equal(await sha256(old), h0, "session 1's view while session 2 is open");

      const mounted = JSON.parse(
        await bdsnap(`view ${dev} --session ${s1.id} --mount ${V} --json`),
      );
      views.push(mounted.view);
      assert.equal(
        await sh(`cd ${V} && ${TREE}`),
        tree0,
        "the mounted view holds the files before mount 1",
      );

      await bdsnap(`export ${dev} --session ${s1.id} --output /tmp/view-export.img`);
      assert.equal(await sha256("/tmp/view-export.img"), h0, "export while mounted");
      await Deno.remove("/tmp/view-export.img");

      const refused = await bdsnapTry(`deactivate ${dev} --password-file ${PASSWORD_FILE}`);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /view/);
      assert.equal((await viewList()).length, 3);

      // Removed while being read: the reader sees an error or the end, the view goes.
      const dd = new Deno.Command("dd", {
        args: [`if=${open}`, "of=/dev/null", "bs=64k", "iflag=direct"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await new Promise((r) => setTimeout(r, 500));
      await bdsnap(`view --remove ${open}`);
      await dd.status;
      views.shift();
      assert.ok(!(await viewList()).some((v) => v.device === open));
      const name = open.replace("/dev/", "");
      assert.equal(
        (await shTry(`test -e /sys/block/${name}/pid`)).code,
        1,
        "the nbd device is free",
      );

      const busy = await bdsnapTry(`view --remove ${mounted.view} --json`);
      assert.equal(busy.code, 0, "--remove unmounts what --mount mounted");
      views.splice(views.indexOf(mounted.view), 1);
      assert.equal((await shTry(`mountpoint -q ${V}`)).code, 1);
    } finally {
      fio.kill("SIGTERM");
      await fio.status;
      for (const v of views) await bdsnapTry(`view --remove ${v}`);
    }
    assert.deepEqual(await viewList(), []);
    await sh(`umount ${M}`);
    await deactivate(dev);
  },
});

Deno.test({
  name: "view: an image file behind a loop device, mounted and written",

  fn: async () => {
    await loadModule();
    const img = "/tmp/view-image.img";
    await sh(`truncate -s 64M ${img} && mkfs.ext4 -q -F ${img}`);
    const h0 = await sha256(img);
    await bdsnap(`activate ${img} --password-file ${PASSWORD_FILE}`);
    const loop = (await sh(`losetup --find --show ${img}`)).trim();
    try {
      await sh(`mkdir -p ${M} && mount ${loop} ${M} && head -c 8M /dev/urandom > ${M}/x && sync`);
      const v = await view(img);
      try {
        assert.equal(await sha256(v), h0, "the image as it was before the mount");
      } finally {
        await bdsnap(`view --remove ${v}`);
      }
      await sh(`umount ${M}`);
    } finally {
      await shTry(`umount ${M}`);
      await sh(`losetup -d ${loop}`);
    }
    await deactivate(img);
    await Deno.remove(img);
  },
});
