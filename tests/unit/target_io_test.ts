import assert from "node:assert/strict";
import {
  alignedBuffer,
  DIRECT_ALIGN,
  MediumReader,
  TargetWriter,
  WritePipeline,
} from "../../lib/target_io.ts";
import { addressOf } from "../../ffi/libc.ts";

Deno.test("target io: aligned buffers, direct and unaligned writes, reads of the medium", async () => {
  const dir = await Deno.makeTempDir({ dir: Deno.cwd(), prefix: ".tmp-target-io-" });
  try {
    const buf = alignedBuffer(3 * DIRECT_ALIGN);
    assert.equal(addressOf(buf) % BigInt(DIRECT_ALIGN), 0n);
    assert.equal(buf.length, 3 * DIRECT_ALIGN);

    const path = `${dir}/img`;
    const size = 64 * 1024 + 512; // a tail that is not 4 KiB aligned
    const expected = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 255);
    await Deno.writeFile(path, new Uint8Array(size));
    const w = TargetWriter.open(path);
    let written = 0;
    const pipe = new WritePipeline(w, 16384, (n) => written += n);
    for (let at = 0; at < size; at += 16384) {
      const n = Math.min(16384, size - at);
      pipe.buffer.set(expected.subarray(at, at + n));
      await pipe.submit(n, at);
    }
    await pipe.drain();
    w.sync();
    w.close();
    assert.equal(written, size);
    assert.equal(pipe.writes, Math.ceil(size / 16384));
    assert.deepEqual(await Deno.readFile(path), expected);

    // Unaligned offset and length, through the direct reader's bounce buffer.
    const r = MediumReader.open(path, 8192);
    const got = new Uint8Array(10000);
    assert.equal(r.read(got, 1234), 10000);
    assert.deepEqual(got, expected.subarray(1234, 11234));
    // At the end of the file the read is short.
    assert.equal(r.read(new Uint8Array(4096), size - 100), 100);
    r.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("target io: a write error rejects with the errno, the path and the offset", async () => {
  const w = TargetWriter.open("/dev/full"); // every write fails with ENOSPC
  const pipe = new WritePipeline(w, 4096);
  try {
    await pipe.submit(4096, 8192);
    await assert.rejects(() => pipe.drain(), /\/dev\/full at offset 8192.*(ENOSPC|space)/i);
  } finally {
    w.close();
  }
  await assert.rejects(() => w.write(alignedBuffer(4096), 0), /closed/);
});
