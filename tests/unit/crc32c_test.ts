import assert from "node:assert/strict";
import { crc32c, crc32cImplementation, crc32cPortable, useFastCrc32c } from "../../lib/crc32c.ts";

Deno.test("crc32c: portable until asked, then the native addon on x86-64 Linux", async () => {
  assert.equal(crc32cImplementation(), "portable", "the addon is loaded only when asked for");
  const before = crc32c(new TextEncoder().encode("123456789"));
  // The restore rate depends on it; a silent fall-back would only show in the benchmark.
  const used = await useFastCrc32c();
  assert.equal(crc32cImplementation(), used);
  if (Deno.build.os === "linux" && Deno.build.arch === "x86_64") assert.equal(used, "native");
  assert.equal(crc32c(new TextEncoder().encode("123456789")), before);
});

Deno.test("crc32c: native and portable agree on every length, offset and split", () => {
  const buf = new Uint8Array(70_000);
  crypto.getRandomValues(buf.subarray(0, 65_536));
  buf.copyWithin(65_536, 0, buf.length - 65_536);
  let seed = 1;
  const next = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
  for (let i = 0; i < 400; i++) {
    const start = next(64);
    const len = i < 80 ? i : next(buf.length - start);
    const data = buf.subarray(start, start + len);
    const whole = crc32cPortable(data);
    assert.equal(crc32c(data), whole, `length ${len} at offset ${start}`);
    const cut = len === 0 ? 0 : next(len);
    const head = crc32c(data.subarray(0, cut));
    assert.equal(crc32c(data.subarray(cut), head), whole, `split at ${cut} of ${len}`);
    assert.equal(crc32cPortable(data.subarray(cut), crc32cPortable(data.subarray(0, cut))), whole);
  }
});

Deno.test("crc32c: both give the standard check values", () => {
  const enc = new TextEncoder();
  for (const f of [crc32c, crc32cPortable]) {
    assert.equal(f(enc.encode("123456789")), 0xe3069283);
    assert.equal(f(new Uint8Array(0)), 0);
    assert.equal(f(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(f(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  }
});
