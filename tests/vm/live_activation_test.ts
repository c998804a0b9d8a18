// vm: disks=1 disk-size=320M store-size=1G timeout=1200
/**
 * Activating a device whose filesystem is mounted and being written (issue
 * 21): the module freezes the filesystem, opens a session from that frozen
 * state and thaws it. After the unmount, a restore of that session gives a
 * filesystem fsck finds clean, holding the files as they were at
 * activation: every file the writer finished before `activate` was called,
 * none it began after `activate` returned, none torn, and the files changed
 * after activation as they were before.
 */
import assert from "node:assert/strict";
import { sh, shTry, testDisks } from "./_helpers.ts";
import { bdsnap, deactivate, loadModule, PASSWORD_FILE, restore, sessions } from "./_bdsnap.ts";

const MKFS: Record<string, string> = { ext4: "mkfs.ext4 -q -F", xfs: "mkfs.xfs -q -f" };
const FSCK: Record<string, string> = { ext4: "fsck.ext4 -fn", xfs: "xfs_repair -n" };
const M = "/mnt/live";
const COUNT = "/run/live-writer-count";
const STOP = "/run/live-writer-stop";

/**
 * The writer: file w<i> holds "<i>\n" repeated to 64 KiB, written under a
 * temporary name and renamed, then COUNT says i. Content follows from the
 * name, so a torn or stale file is seen.
 */
const WRITER = `
  i=0
  while [ ! -e ${STOP} ]; do
    i=$((i + 1))
    yes $i 2>/dev/null | head -c 65536 > ${M}/.w.tmp && mv ${M}/.w.tmp ${M}/w$i
    echo $i > ${COUNT}
  done`;

async function count(): Promise<number> {
  return Number((await Deno.readTextFile(COUNT)).trim());
}

async function expected(i: number): Promise<string> {
  return (await sh(`yes ${i} | head -c 65536 | sha256sum`)).split(" ")[0];
}

for (const fs of ["ext4", "xfs"]) {
  Deno.test(`${fs}: activated while mounted and written: the session begins at activation; its restore is clean and as at activation`, async () => {
    const [dev] = testDisks();
    await loadModule();
    await sh(`${MKFS[fs]} ${dev} >/dev/null && mkdir -p ${M} && mount ${dev} ${M}`);
    await sh(`for i in $(seq 1 20); do head -c $((i * 5000)) /dev/urandom > ${M}/p$i; done; sync`);
    const statics = await sh(`cd ${M} && sha256sum p*`);
    await Deno.remove(STOP).catch(() => undefined);
    await Deno.writeTextFile(COUNT, "0\n");
    // Not piped: nobody reads the pipes, and a full one would stop the writer.
    const writer = new Deno.Command("bash", {
      args: ["-c", WRITER],
      stdout: "null",
      stderr: "inherit",
    })
      .spawn();
    let active = false;
    try {
      while (await count() < 5) await new Promise((r) => setTimeout(r, 100));
      const c0 = await count();
      const out = JSON.parse(
        await bdsnap(`activate ${dev} --password-file ${PASSWORD_FILE} --json`),
      );
      const c1 = await count();
      active = true;
      assert.equal(out.began_at_activation, M, "the mounted filesystem's session began now");
      // After the activation: change the static files, and let the writer go on.
      await sh(`cd ${M} && for i in $(seq 1 10); do echo changed > p$i; done; rm p11 p12 p13`);
      await new Promise((r) => setTimeout(r, 2000));
      await Deno.writeTextFile(STOP, "");
      assert.equal((await writer.status).code, 0);
      const last = await count();
      assert.ok(last > c1 + 2, `the writer went on after the activation (${c1} -> ${last})`);

      const s = (await sessions(dev)).at(-1)!;
      const meta = JSON.parse(await Deno.readTextFile(`/snapshot/${s.id}/meta.json`));
      assert.equal(meta.began, "activation");
      assert.equal(meta.fs_type, fs);
      assert.equal(s.state, "open", "open until the unmount");
      await sh(`umount ${M}`);
      assert.equal((await sessions(dev)).at(-1)!.state, "closed", "the unmount closed it");
      await deactivate(dev);
      active = false;

      await restore(dev, s.id);
      // A frozen xfs has its metadata in place but its log not marked clean
      // (the freeze covers the log, it writes no unmount record): the first
      // mount replays it, as xfs_repair says. ext4's freeze leaves it clean.
      if (fs === "xfs") await sh(`mount ${dev} ${M} && umount ${M}`);
      const fsck = await shTry(`${FSCK[fs]} ${dev}`);
      assert.equal(fsck.code, 0, `${FSCK[fs]} after the restore:\n${fsck.stdout}${fsck.stderr}`);
      await sh(`mount -o ro ${dev} ${M}`);
      try {
        assert.equal(await sh(`cd ${M} && sha256sum p*`), statics, "static files as at activation");
        const names = (await sh(`ls ${M}`)).split("\n").filter((n) => /^w\d+$/.test(n));
        const present = names.map((n) => Number(n.slice(1))).sort((a, b) => a - b);
        const k = present.length;
        assert.deepEqual(present, Array.from({ length: k }, (_, j) => j + 1), "w1..wk, no gap");
        assert.ok(k >= c0, `every file finished before activate is there (${k} >= ${c0})`);
        assert.ok(k <= c1 + 1, `none begun after activate returned (${k} <= ${c1 + 1})`);
        for (const i of [1, Math.max(1, k - 1), k]) {
          const got = (await sh(`sha256sum ${M}/w${i}`)).split(" ")[0];
          assert.equal(got, await expected(i), `w${i} is whole`);
        }
      } finally {
        await sh(`umount ${M}`);
      }
    } finally {
      await Deno.writeTextFile(STOP, "");
      await writer.status;
      await shTry(`umount ${M}`);
      if (active) await deactivate(dev).catch(() => undefined);
    }
  });
}
