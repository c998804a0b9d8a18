import assert from "node:assert/strict";
import { crc32c, useFastCrc32c } from "../../lib/crc32c.ts";
import { CrcPool } from "../../lib/crc_pool.ts";
import { readSession, verifySessionData } from "../../lib/store.ts";
import {
  flipBit,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeSession,
} from "../_store_writer.ts";

const SIZE = 1 << 20;

/** One closed session with many records of different lengths. */
async function bigSession() {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-pool-" });
  const rand = rng(7);
  const h = simulate(randomBytes(rand, SIZE), "/dev/vdb", [
    { writes: randomWrites(rand, SIZE, 120, 40_000) },
  ]);
  const id = await writeSession(root, h.sessions[0]);
  return { root, dir: `${root}/${id}` };
}

Deno.test("crc pool: each record's CRC-32C equals the one computed here", async () => {
  const pool = await CrcPool.start(2);
  assert.ok(pool, "workers start");
  try {
    const rand = rng(3);
    const lengths = Uint32Array.of(0, 1, 4096, 777, 65536, 3);
    const total = lengths.reduce((a, b) => a + b, 0);
    const bytes = randomBytes(rand, total);
    const copy = bytes.slice();
    const answers = await Promise.all([
      pool.run(bytes.buffer, lengths),
      pool.run(copy.slice().buffer, lengths.subarray(2)),
    ]);
    let off = 0;
    const want = [...lengths].map((n) => {
      const c = crc32c(copy.subarray(off, off + n));
      off += n;
      return c;
    });
    assert.deepEqual([...answers[0].crcs], want);
    assert.equal(answers[0].buffer.byteLength, total, "the buffer comes back");
    // The second job started at byte 0 of its own buffer.
    assert.equal(answers[1].crcs[0], crc32c(copy.subarray(0, 4096)));
  } finally {
    pool.close();
  }
});

Deno.test("crc pool: none for size 0; a closed pool rejects", async () => {
  assert.equal(await CrcPool.start(0), null);
  assert.equal(await CrcPool.startFor(1000), null, "too little data to be worth workers");
  if (await useFastCrc32c() === "native") {
    assert.equal(await CrcPool.startFor(1 << 30), null, "the native CRC needs no workers");
  }
  const pool = (await CrcPool.start(1))!;
  pool.close();
  await assert.rejects(pool.run(new ArrayBuffer(4), Uint32Array.of(4)), /closed/);
});

Deno.test("crc pool: verifying in workers finds exactly what the serial pass finds", async () => {
  const { root, dir } = await bigSession();
  const pool = (await CrcPool.start(3))!;
  try {
    const clean = await readSession(dir);
    assert.ok(clean.records.count > 50, `${clean.records.count} records`);
    // Buffers of 64 KiB: every buffer holds several records, the pipeline fills.
    const opts = { bufferSize: 65536 };
    assert.deepEqual(await verifySessionData(clean, { ...opts, pool }), []);

    // Three damaged records, in different buffers.
    const t = clean.records;
    for (const i of [3, 40, t.count - 1]) {
      await flipBit(`${dir}/blocks.dat`, t.datOffset[i] + 17, 5);
    }
    const damaged = await readSession(dir);
    const serial = await verifySessionData(damaged, opts);
    assert.equal(serial.length, 3);
    assert.deepEqual(await verifySessionData(damaged, { ...opts, pool }), serial);
    // The problem cap holds the same way.
    assert.deepEqual(
      await verifySessionData(damaged, { ...opts, pool, maxProblems: 2 }),
      serial.slice(0, 2),
    );

    // blocks.dat cut short: the same "file ends at" problem, at the same offset.
    const data = await Deno.readFile(`${dir}/blocks.dat`);
    await Deno.writeFile(`${dir}/blocks.dat`, data.subarray(0, Math.floor(data.length * 0.6)));
    const short = await verifySessionData(damaged, opts);
    assert.match(short.at(-1)!.message, /file ends at/);
    assert.deepEqual(await verifySessionData(damaged, { ...opts, pool }), short);

    // A record longer than the buffer is checked on this thread, with the same result.
    const tiny = { bufferSize: 1000 };
    assert.deepEqual(
      await verifySessionData(damaged, { ...tiny, pool }),
      await verifySessionData(damaged, tiny),
    );
  } finally {
    pool.close();
    await Deno.remove(root, { recursive: true });
  }
});
