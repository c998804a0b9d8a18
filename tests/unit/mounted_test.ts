import assert from "node:assert/strict";
import { mountsOn } from "../../lib/mounted.ts";

Deno.test("mounted: an image's mounts through its loop device and a partition of it", async () => {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-mounted-" });
  const img = `${root}/disk.img`;
  await Deno.writeFile(img, new Uint8Array(4096));
  const sys = `${root}/sys`;
  const loop = `${sys}/devices/virtual/block/loop3`;
  await Deno.mkdir(`${loop}/loop`, { recursive: true });
  await Deno.mkdir(`${loop}/loop3p1`, { recursive: true });
  await Deno.mkdir(`${sys}/dev/block`, { recursive: true });
  await Deno.mkdir(`${sys}/block`, { recursive: true });
  await Deno.writeTextFile(`${loop}/loop/backing_file`, `${img}\n`);
  await Deno.writeTextFile(`${loop}/dev`, "7:3\n");
  await Deno.writeTextFile(`${loop}/loop3p1/partition`, "1\n");
  await Deno.writeTextFile(`${loop}/loop3p1/dev`, "259:4\n");
  await Deno.symlink(loop, `${sys}/block/loop3`);
  await Deno.symlink(loop, `${sys}/dev/block/7:3`);
  const mi = `${root}/mountinfo`;
  await Deno.writeTextFile(
    mi,
    "22 1 254:0 / / rw - ext4 /dev/vda rw\n" +
      "40 22 259:4 / /mnt/img rw - xfs /dev/loop3p1 rw\n",
  );
  assert.deepEqual(await mountsOn(`${root}/missing.img`, sys, mi), []);
  assert.deepEqual((await mountsOn(img, sys, mi)).map((x) => x.mountPoint), ["/mnt/img"]);
  await Deno.writeTextFile(mi, "22 1 254:0 / / rw - ext4 /dev/vda rw\n");
  assert.deepEqual(await mountsOn(img, sys, mi), [], "not mounted");
  await Deno.remove(root, { recursive: true });
});
