import assert from "node:assert/strict";
import {
  alignedBuffer,
  DIRECT_ALIGN,
  MediumReader,
  TargetWriter,
  WritePipeline,
  WriteQueue,
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

Deno.test("target io: the write queue writes long pieces in place, gathers short ones, in order", async () => {
  const dir = await Deno.makeTempDir({ dir: Deno.cwd(), prefix: ".tmp-target-io-" });
  try {
    const path = `${dir}/img`;
    const size = 256 * 1024;
    await Deno.writeFile(path, new Uint8Array(size));
    const source = alignedBuffer(size);
    source.forEach((_, i) => source[i] = (i * 13 + 5) & 255);
    const expected = new Uint8Array(size);
    const w = TargetWriter.open(path);
    const submitted: Array<{ offset: number; length: number; inPlace: boolean }> = [];
    let written = 0;
    const q = new WriteQueue(w, 32768, {
      zeroCopyMin: 16384,
      onSubmit: (buf, offset) =>
        submitted.push({ offset, length: buf.length, inPlace: buf.buffer === source.buffer }),
      onWritten: (n) => written += n,
    });
    // [device offset, source offset, length]: short adjacent pieces, a gap,
    // a long piece (split into ioSize writes), then short ones again.
    const pieces: Array<[number, number, number]> = [
      [0, 65536, 4096],
      [4096, 8192, 4096],
      [8192, 0, 8192],
      [40960, 81920, 81920],
      [122880, 200704, 4096],
      [126976, 4096, 4096],
    ];
    for (const [dev, src, len] of pieces) {
      await q.put(source.subarray(src, src + len), dev);
      expected.set(source.subarray(src, src + len), dev);
    }
    await q.drain();
    w.sync();
    w.close();
    assert.deepEqual(await Deno.readFile(path), expected);
    assert.equal(written, 16384 + 81920 + 8192);
    assert.deepEqual(submitted, [
      { offset: 0, length: 16384, inPlace: false },
      { offset: 40960, length: 32768, inPlace: true },
      { offset: 73728, length: 32768, inPlace: true },
      { offset: 106496, length: 16384, inPlace: true },
      { offset: 122880, length: 8192, inPlace: false },
    ]);
    assert.equal(q.writes, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("target io: a failed queued write is thrown, and abandon starts nothing more", async () => {
  const w = TargetWriter.open("/dev/full");
  const submitted: number[] = [];
  const q = new WriteQueue(w, 8192, {
    depth: 1,
    zeroCopyMin: 8192,
    onSubmit: (_, offset) => submitted.push(offset),
  });
  try {
    const data = alignedBuffer(8192);
    await q.put(data.subarray(0, 4096), 0); // staged, not written yet
    // Flushing the staged piece starts its write; with depth 1 the long
    // piece waits for it, and its failure is thrown here.
    await assert.rejects(() => q.put(data, 65536), /\/dev\/full at offset 0.*(ENOSPC|space)/i);
    await q.put(data.subarray(0, 4096), 0);
    await q.abandon();
    assert.deepEqual(submitted, [0]);
  } finally {
    w.close();
  }
});
