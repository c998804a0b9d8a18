/**
 * Fuzzing the restore pipeline (store reader → planner → applier) with
 * randomly truncated, bit-flipped, extended and reordered blocks.map,
 * blocks.dat and meta.json files. Every case must end either in a
 * RestoreError with a message, leaving the target byte-for-byte untouched,
 * or in a restore that gives exactly the expected bytes. Nothing else (no
 * TypeError, RangeError, wrong bytes) is accepted.
 */
import assert from "node:assert/strict";
import { applyRestore } from "../../lib/apply.ts";
import { RestoreError } from "../../lib/errors.ts";
import { planRestore } from "../../lib/plan.ts";
import { listSessions } from "../../lib/store.ts";
import { randomBytes, randomWrites, rng, simulate, writeHistory } from "../_store_writer.ts";

const CASES = Number(Deno.env.get("BDSNAP_FUZZ_CASES") ?? 3000);
const SIZE = 64 * 1024;
const FILES = ["blocks.map", "blocks.dat", "meta.json"] as const;

type Mutation = "truncate" | "flip" | "append" | "reorder";

function mutate(rand: () => number, file: string, bytes: Uint8Array, how: Mutation): Uint8Array {
  const int = (n: number) => Math.floor(rand() * n);
  switch (how) {
    case "truncate":
      return bytes.slice(0, int(bytes.length));
    case "flip": {
      const out = bytes.slice();
      const flips = 1 + int(3);
      for (let i = 0; i < flips && out.length > 0; i++) out[int(out.length)] ^= 1 << int(8);
      return out;
    }
    case "append": {
      const extra = rand() < 0.5 ? randomBytes(rand, 1 + int(64)) : new Uint8Array(1 + int(64));
      const out = new Uint8Array(bytes.length + extra.length);
      out.set(bytes);
      out.set(extra, bytes.length);
      return out;
    }
    case "reorder": {
      if (file === "meta.json") {
        // Shuffle the keys; sometimes also swap the values of two keys.
        const obj = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
        const keys = Object.keys(obj);
        for (let i = keys.length - 1; i > 0; i--) {
          const j = int(i + 1);
          [keys[i], keys[j]] = [keys[j], keys[i]];
        }
        const out: Record<string, unknown> = {};
        for (const k of keys) out[k] = obj[k];
        if (rand() < 0.5) {
          const a = keys[int(keys.length)];
          const b = keys[int(keys.length)];
          [out[a], out[b]] = [out[b], out[a]];
        }
        return new TextEncoder().encode(JSON.stringify(out, null, rand() < 0.5 ? 2 : 0));
      }
      // Swap two units: records of blocks.map (after the header), 512-byte
      // blocks of blocks.dat.
      const [start, unit] = file === "blocks.map" ? [64, 32] : [0, 512];
      const n = Math.floor((bytes.length - start) / unit);
      const out = bytes.slice();
      if (n < 2) return out;
      const a = int(n);
      let b = int(n - 1);
      if (b >= a) b++;
      out.set(bytes.subarray(start + a * unit, start + (a + 1) * unit), start + b * unit);
      out.set(bytes.subarray(start + b * unit, start + (b + 1) * unit), start + a * unit);
      return out;
    }
  }
}

Deno.test(`fuzz: ${CASES} damaged stores give a clear error and leave the target untouched`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-fuzz-" });
  const root = `${dir}/store`;
  const image = `${dir}/disk.img`;
  const rand = rng(Number(Deno.env.get("BDSNAP_FUZZ_SEED") ?? 20261122));
  const h = simulate(
    randomBytes(rand, SIZE),
    image,
    Array.from({ length: 4 }, () => ({ writes: randomWrites(rand, SIZE, 5, 12000) })),
  );
  const ids = await writeHistory(root, h);
  await Deno.writeFile(image, h.final);
  const originals = new Map<string, Uint8Array>();
  for (const id of ids) {
    for (const f of FILES) originals.set(`${id}/${f}`, await Deno.readFile(`${root}/${id}/${f}`));
  }

  const outcomes: Record<string, number> = {};
  const hows: Mutation[] = ["truncate", "flip", "append", "reorder"];
  for (let c = 0; c < CASES; c++) {
    const id = ids[Math.floor(rand() * ids.length)];
    const file = FILES[Math.floor(rand() * FILES.length)];
    const how = hows[Math.floor(rand() * hows.length)];
    const key = `${id}/${file}`;
    const k = Math.floor(rand() * ids.length);
    const mutated = mutate(rand, file, originals.get(key)!, how);
    await Deno.writeFile(`${root}/${key}`, mutated);
    const label = `case ${c}: ${how} ${file} of session ${ids.indexOf(id)}, restore to ${k}`;
    let outcome: string;
    try {
      const sessions = await listSessions(root, { liveSessions: new Set() });
      const plan = planRestore(sessions, ids[k]);
      await applyRestore(plan, { readBack: false });
      assert.deepEqual(await Deno.readFile(image), h.before[k], `${label}: wrong bytes`);
      await Deno.writeFile(image, h.final);
      outcome = "restored";
    } catch (e) {
      if (!(e instanceof RestoreError)) {
        throw new Error(`${label}: unexpected ${e instanceof Error ? e.stack : e}`);
      }
      assert.ok(e.message.length > 10, `${label}: vague message ${e.message}`);
      assert.deepEqual(await Deno.readFile(image), h.final, `${label}: target changed`);
      outcome = e.code;
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    await Deno.writeFile(`${root}/${key}`, originals.get(key)!);
  }
  if (Deno.env.get("BDSNAP_FUZZ_VERBOSE")) console.log(outcomes);
  // Both kinds of outcome occur, and most damage is caught as damage.
  assert.ok(outcomes.restored > 0, JSON.stringify(outcomes));
  assert.ok(outcomes.damaged > CASES / 4, JSON.stringify(outcomes));
  await Deno.remove(dir, { recursive: true });
});
