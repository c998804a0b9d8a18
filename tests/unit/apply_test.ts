import assert from "node:assert/strict";
import { applyRestore, writePlan } from "../../lib/apply.ts";
import { exportImage } from "../../lib/export.ts";
import { devString, loopDevicesOf } from "../../lib/target.ts";
import { RestoreError } from "../../lib/errors.ts";
import { planRestore } from "../../lib/plan.ts";
import { listSessions } from "../../lib/store.ts";
import {
  flipBit,
  type History,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeHistory,
} from "../_store_writer.ts";

const SIZE = 512 * 1024;

interface Fixture {
  dir: string;
  root: string;
  image: string;
  ids: string[];
  h: History;
}

async function fixture(kind: "file" | "block" = "file", seed = 3): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-apply-" });
  const root = `${dir}/store`;
  const image = `${dir}/disk.img`;
  const rand = rng(seed);
  const h = simulate(
    randomBytes(rand, SIZE),
    image,
    Array.from({ length: 4 }, () => ({ writes: randomWrites(rand, SIZE, 10, 60000) })),
    { kind },
  );
  const ids = await writeHistory(root, h);
  await Deno.writeFile(image, h.final);
  return { dir, root, image, ids, h };
}

async function plan(f: Fixture, k: number) {
  return planRestore(await listSessions(f.root, { liveSessions: new Set() }), f.ids[k]);
}

/** Byte equality without assert's (slow, huge) diff of large arrays. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof RestoreError, String(e));
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

Deno.test("apply: restore into the image gives each pre-mount state; reruns are idempotent", async () => {
  const f = await fixture();
  // Newest first: each restore marks the later sessions superseded.
  for (const k of [3, 2, 1, 0]) {
    await Deno.writeFile(f.image, f.h.final);
    const p = await plan(f, k);
    const events: string[] = [];
    const r = await applyRestore(p, {
      ioSize: 16384, // several writes per extent
      readBack: true,
      onProgress: (e) => events.push(e.phase),
    });
    assert.deepEqual(await Deno.readFile(f.image), f.h.before[k], `k=${k}`);
    assert.equal(r.bytes, p.bytes);
    assert.equal(r.verifiedBytes, p.bytes);
    assert.equal(r.explicit, false);
    assert.deepEqual([...new Set(events)], ["verify", "write", "readback"]);
    assert.deepEqual(r.superseded, f.ids.slice(k + 1));
    assert.deepEqual(r.unmarked, []);
    const marks = (await listSessions(f.root)).map((s) => s.superseded?.restoredTo ?? null);
    assert.deepEqual(marks.slice(k + 1), f.ids.slice(k + 1).map(() => f.ids[k]));
    const again = await applyRestore(p);
    assert.deepEqual(await Deno.readFile(f.image), f.h.before[k], `rerun k=${k}`);
    assert.equal(again.verifiedBytes, 0, "read-back is off by default");
  }
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: --target writes a copy and leaves the device alone; dry run writes nothing", async () => {
  const f = await fixture();
  const copy = `${f.dir}/copy.img`;
  await Deno.writeFile(copy, f.h.final);
  const p = await plan(f, 1);
  const dry = await applyRestore(p, { target: copy, dryRun: true });
  assert.equal(dry.dryRun, true);
  assert.deepEqual(dry.superseded, [], "a copy undoes nothing");
  assert.deepEqual(await Deno.readFile(copy), f.h.final);
  let asked = 0;
  const r = await applyRestore(p, { target: copy, onTarget: () => void asked++ });
  assert.equal(asked, 1);
  assert.equal(r.explicit, true);
  assert.deepEqual(r.superseded, []);
  assert.ok((await listSessions(f.root)).every((s) => s.superseded === null));
  assert.ok(equalBytes(await Deno.readFile(copy), f.h.before[1]));
  assert.ok(equalBytes(await Deno.readFile(f.image), f.h.final));
  // A refusal in onTarget (a declined prompt) writes nothing.
  await Deno.writeFile(copy, f.h.final);
  await assert.rejects(
    applyRestore(p, {
      target: copy,
      onTarget: () => {
        throw new Error("declined");
      },
    }),
    /declined/,
  );
  assert.ok(equalBytes(await Deno.readFile(copy), f.h.final), "nothing written");
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: refuses a wrong size, identity, activation or a loop-attached image", async () => {
  const f = await fixture();
  const p = await plan(f, 0);
  const small = `${f.dir}/small.img`;
  await Deno.writeFile(small, new Uint8Array(SIZE - 4096));
  await rejectsWith(applyRestore(p, { target: small }), "size", /is 520192 bytes/);
  await rejectsWith(applyRestore(p, { target: `${f.dir}/nope.img` }), "not-found");
  await rejectsWith(applyRestore(p, { target: f.dir }), "invalid", /neither a block device/);
  await rejectsWith(
    applyRestore(p, { isActivated: (path) => path === f.image }),
    "activated",
    /deactivate it first/,
  );
  // A fake sysfs where loop3 is backed by the image.
  const sys = `${f.dir}/sys`;
  await Deno.mkdir(`${sys}/loop3/loop`, { recursive: true });
  await Deno.mkdir(`${sys}/loop4`, { recursive: true });
  await Deno.writeTextFile(`${sys}/loop3/loop/backing_file`, `${await Deno.realPath(f.image)}\n`);
  assert.deepEqual(await loopDevicesOf(await Deno.realPath(f.image), sys), ["/dev/loop3"]);
  await rejectsWith(applyRestore(p, { sysBlock: sys }), "busy", /losetup -d \/dev\/loop3/);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: identity mismatch refuses unless forced, and force says so", async () => {
  const f = await fixture("block"); // sessions say block device, the path is an image file
  const p = await plan(f, 2);
  await rejectsWith(applyRestore(p), "identity", /not a block device.*--force/);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  const r = await applyRestore(p, { force: true });
  assert.match(r.warnings.join("\n"), /IDENTITY CHECK OVERRIDDEN/);
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[2]);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: a data checksum error refuses before the first byte is written", async () => {
  const f = await fixture();
  const sessions = await listSessions(f.root, { liveSessions: new Set() });
  const last = sessions[3];
  const at = last.records.datOffset[last.records.count - 1] + 7;
  await flipBit(`${f.root}/${f.ids[3]}/blocks.dat`, at, 6);
  const p = planRestore(await listSessions(f.root, { liveSessions: new Set() }), f.ids[0]);
  await rejectsWith(applyRestore(p), "damaged", /blocks\.dat at offset \d+: data_crc mismatch/);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: a blocks.dat cut short after planning is refused before mapping it", async () => {
  // The write pass maps blocks.dat; reading a mapping past the file's end
  // would kill the process with SIGBUS instead of giving an error.
  const f = await fixture();
  const p = await plan(f, 0);
  const last = p.sessions.at(-1)!;
  await Deno.truncate(`${last.dir}/blocks.dat`, last.dataBytes - 4096);
  await rejectsWith(writePlan(p, f.image), "damaged", /blocks\.dat: file ends at \d+/);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: export writes the pre-mount image and never touches the device", async () => {
  const f = await fixture();
  const out = `${f.dir}/export.img`;
  let replanned = 0;
  const p = await plan(f, 1);
  const r = await exportImage(p, {
    output: out,
    replan: async () => {
      replanned++;
      return await plan(f, 1);
    },
  });
  assert.equal(replanned, 1);
  assert.equal(r.copied, SIZE);
  assert.deepEqual(await Deno.readFile(out), f.h.before[1]);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
  // Overwrites an old export; refuses to write over the device or a directory.
  await exportImage(await plan(f, 0), { output: out });
  assert.deepEqual(await Deno.readFile(out), f.h.before[0]);
  await rejectsWith(exportImage(p, { output: f.image }), "invalid", /device itself/);
  await rejectsWith(exportImage(p, { output: f.dir }), "invalid", /not a regular file/);
  // A damaged store leaves no output behind.
  await flipBit(`${f.root}/${f.ids[2]}/blocks.dat`, 0);
  const out2 = `${f.dir}/export2.img`;
  await rejectsWith(exportImage(await plan(f, 1), { output: out2 }), "damaged");
  assert.equal(await Deno.stat(out2).then(() => true, () => false), false);
  assert.equal(await Deno.stat(`${out2}.partial`).then(() => true, () => false), false);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("apply: devString decodes Linux dev_t", () => {
  assert.equal(devString(1792), "7:0");
  assert.equal(devString((254 << 8) | 16), "254:16");
  assert.equal(devString(0x10301), "259:1");
  assert.equal(devString(44 | (8 << 8) | (256 << 12)), "8:300"); // minor above 255
});

const canLoop = Deno.uid() === 0 &&
  (await new Deno.Command("losetup", { args: ["--version"], stdout: "null", stderr: "null" })
    .output().then((o) => o.success, () => false));

Deno.test({
  name: "apply: a block device held exclusively is busy; free, it is restored (root, loop)",
  ignore: !canLoop,
  fn: async () => {
    const f = await fixture("block");
    const attach = await new Deno.Command("losetup", { args: ["-f", "--show", f.image] }).output();
    assert.ok(attach.success, new TextDecoder().decode(attach.stderr));
    const loop = new TextDecoder().decode(attach.stdout).trim();
    try {
      const { close, open, O_RDONLY } = await import("../../ffi/libc.ts");
      const p = await plan(f, 1);
      // Sessions recorded 7:0; the loop device is chosen explicitly, so no identity check.
      const fd = open(loop, O_RDONLY | 0o200); // what a mount does: claim it
      await rejectsWith(applyRestore(p, { target: loop }), "busy", /mounted or in use/);
      close(fd);
      await applyRestore(p, { target: loop });
      const f2 = await Deno.open(loop, { read: true });
      const got = new Uint8Array(SIZE);
      let n = 0;
      while (n < SIZE) n += (await f2.read(got.subarray(n)))!;
      f2.close();
      assert.deepEqual(got, f.h.before[1]);
    } finally {
      await new Deno.Command("losetup", { args: ["-d", loop] }).output();
      await Deno.remove(f.dir, { recursive: true });
    }
  },
});
