/**
 * Test helper: a store of simulated sessions of an image file, the image at
 * its final state, the dependencies of a run without a terminal or the
 * module, and a plan applied in memory, for the restore tests.
 * @module
 */

import {
  type History,
  type MountSpec,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeHistory,
} from "../_store_writer.ts";
import type { RestoreDeps } from "../../cli/_lib/restore_common.ts";
import type { Plan } from "../../lib/plan.ts";

/** Size of the fixture's image. */
export const SIZE = 256 * 1024;

/** A fixture: the temporary directory, its store and image, the ids, the history. */
export interface Fixture {
  dir: string;
  root: string;
  image: string;
  ids: string[];
  h: History;
}

/** A mount of the fixture: its final state, or more of its MountSpec. */
export type FixtureMount = "closed" | "open" | Omit<MountSpec, "writes">;

/** Simulate the mounts (8 random writes each), write the store and the final image. */
export async function fixture(
  states: FixtureMount[] = ["closed", "closed", "closed"],
): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-cli-" });
  const root = `${dir}/store`;
  const image = `${dir}/disk.img`;
  const rand = rng(5);
  const h = simulate(
    randomBytes(rand, SIZE),
    image,
    states.map((m) => ({
      ...(typeof m === "string" ? { state: m } : m),
      writes: randomWrites(rand, SIZE, 8, 30000),
    })),
  );
  const ids = await writeHistory(root, h);
  await Deno.writeFile(image, h.final);
  return { dir, root, image, ids, h };
}

/** A run from a script: no terminal, nothing activated, nothing live. */
export const script: RestoreDeps = {
  interactive: () => false,
  isActivated: () => false,
  liveSessions: () => new Set(),
};

/** Apply a plan in memory to `current`, reading the sessions' blocks.dat. */
export async function applyInMemory(plan: Plan, current: Uint8Array): Promise<Uint8Array> {
  const out = new Uint8Array(current);
  const dats = await Promise.all(plan.sessions.map((s) => Deno.readFile(`${s.dir}/blocks.dat`)));
  for (const p of plan.pieces) {
    out.set(dats[p.session].subarray(p.datOffset, p.datOffset + p.length), p.devOffset);
  }
  return out;
}
