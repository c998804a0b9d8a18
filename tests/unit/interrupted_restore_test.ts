import assert from "node:assert/strict";
import { applyRestore } from "../../lib/apply.ts";
import { planRestore } from "../../lib/plan.ts";
import { listSessions } from "../../lib/store.ts";
import { randomBytes, randomWrites, rng, simulate, writeHistory } from "../_store_writer.ts";

Deno.test("interrupted restore: a child killed mid-way, then a rerun, gives the exact state", async () => {
  const size = 1 << 20;
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-kill-" });
  const root = `${dir}/store`;
  const image = `${dir}/disk.img`;
  const rand = rng(99);
  const h = simulate(
    randomBytes(rand, size),
    image,
    Array.from({ length: 3 }, () => ({ writes: randomWrites(rand, size, 40, 30000) })),
  );
  const ids = await writeHistory(root, h);
  await Deno.writeFile(image, h.final);

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      new URL("./_restore_child.ts", import.meta.url).pathname,
      root,
      ids[0],
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let killedAt = -1;
  while (killedAt < 0) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
    const m = [...seen.matchAll(/write (\d+) (\d+)\n/g)].at(-1);
    if (m && Number(m[1]) >= 8 * 4096) {
      child.kill("SIGKILL");
      killedAt = Number(m[1]);
      assert.ok(killedAt < Number(m[2]), "killed before the end");
    }
  }
  await reader.cancel();
  const status = await child.status;
  await child.stderr.cancel();
  assert.equal(status.signal, "SIGKILL", seen);
  const partial = await Deno.readFile(image);
  assert.notDeepEqual(partial, h.final, "some bytes were written");
  assert.notDeepEqual(partial, h.before[0], "not all bytes were written");

  // Run it again: same plan, same bytes, exact result.
  const plan = planRestore(await listSessions(root, { liveSessions: new Set() }), ids[0]);
  await applyRestore(plan);
  assert.deepEqual(await Deno.readFile(image), h.before[0]);
  await Deno.remove(dir, { recursive: true });
});
