import assert from "node:assert/strict";
import { crc32c } from "../../lib/crc32c.ts";
import {
  decodeMapHeader,
  decodeMapRecord,
  encodeMapHeader,
  encodeMapRecord,
  encodeMeta,
  FormatError,
  formatSessionId,
  MAP_HEADER_SIZE,
  MAP_RECORD_SIZE,
  parseMeta,
  parseSessionId,
  type SessionMeta,
  storeName,
} from "../../lib/format.ts";

const enc = new TextEncoder();

Deno.test("crc32c: check value and streaming", () => {
  assert.equal(crc32c(enc.encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const a = crc32c(enc.encode("1234"));
  assert.equal(crc32c(enc.encode("56789"), a), 0xe3069283);
  // RFC 3720 B.4: 32 bytes of zeros.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
});

Deno.test("format: header round trip and checks", () => {
  const h = {
    version: 1,
    chunkSize: 4096,
    deviceSize: 2 ** 40 + 4096,
    logicalBlockSize: 512,
    flags: 0,
  };
  const bytes = encodeMapHeader(h);
  assert.equal(bytes.length, MAP_HEADER_SIZE);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 8)), "BDSNAPMP");
  assert.deepEqual(decodeMapHeader(bytes), h);

  assert.throws(() => decodeMapHeader(bytes.subarray(0, 63)), /shorter than/);
  const badMagic = bytes.slice();
  badMagic[0] ^= 1;
  assert.throws(() => decodeMapHeader(badMagic), /bad magic/);
  const badCrc = bytes.slice();
  badCrc[30] ^= 1;
  assert.throws(() => decodeMapHeader(badCrc), (e) => e instanceof FormatError && e.offset === 60);
  assert.throws(
    () => decodeMapHeader(encodeMapHeader({ ...h, version: 2 })),
    /unknown map version 2/,
  );
  assert.throws(() => decodeMapHeader(encodeMapHeader({ ...h, flags: 1 })), /unknown flags/);
  assert.throws(() => decodeMapHeader(encodeMapHeader({ ...h, chunkSize: 1000 })), /chunk_size/);
});

Deno.test("format: record round trip and checks", () => {
  const r = { devOffset: 8192, datOffset: 2 ** 33, length: 4096, dataCrc: 0xdeadbeef, seq: 7 };
  const bytes = encodeMapRecord(r);
  assert.equal(bytes.length, MAP_RECORD_SIZE);
  assert.deepEqual(decodeMapRecord(bytes), r);
  const two = new Uint8Array(64);
  two.set(bytes, 32);
  assert.deepEqual(decodeMapRecord(two, 32), r);
  assert.throws(() => decodeMapRecord(two, 40), (e) => e instanceof FormatError && e.offset === 40);
  const flipped = bytes.slice();
  flipped[3] ^= 0x10;
  assert.throws(() => decodeMapRecord(flipped), /bad record_crc/);
});

function meta(over: Partial<SessionMeta> = {}): SessionMeta {
  return {
    format: 1,
    id: "dev_vdb_20261122T072301.123456Z",
    device: "/dev/vdb",
    kind: "block",
    dev: "254:16",
    size: 1 << 30,
    logicalBlockSize: 512,
    chunkSize: 4096,
    fsType: "ext4",
    seq: 1,
    mountTimeNs: 1795332181123456789,
    endTimeNs: 0,
    state: "open",
    error: "",
    records: 0,
    bytes: 0,
    unmountedWritesBefore: 0,
    ...over,
  };
}

Deno.test("format: meta.json round trip uses the snake_case names", () => {
  const m = meta();
  const text = encodeMeta(m);
  assert.match(text, /"logical_block_size": 512/);
  assert.match(text, /"unmounted_writes_before": 0/);
  assert.deepEqual(parseMeta(text), m);
  assert.deepEqual(parseMeta(enc.encode(text)), m);
});

Deno.test("format: meta.json errors name the field", () => {
  const obj = JSON.parse(encodeMeta(meta()));
  const bad = (o: unknown, re: RegExp) =>
    assert.throws(
      () => parseMeta(JSON.stringify(o)),
      (e) => e instanceof FormatError && re.test(e.message),
    );
  bad({ ...obj, size: -1 }, /"size" must be a non-negative integer/);
  bad({ ...obj, seq: 0 }, /"seq" must be a positive integer/);
  bad({ ...obj, state: "opened" }, /"state" "opened" is unknown/);
  bad({ ...obj, kind: "disk" }, /"kind"/);
  bad({ ...obj, dev: "254" }, /major:minor/);
  bad({ ...obj, format: 2 }, /format 2 is unknown/);
  const { fs_type: _, ...noFs } = obj;
  bad(noFs, /has no "fs_type"/);
  bad([1], /not a JSON object/);
  assert.throws(
    () => parseMeta('{"format": 1,'),
    (e) => e instanceof FormatError && /not valid JSON/.test(e.message),
  );
  assert.throws(() => parseMeta(new Uint8Array([0x7b, 0xff, 0x7d])), /not valid UTF-8/);
});

Deno.test("format: store names and session ids", () => {
  assert.equal(storeName("/dev/vdb"), "dev_vdb");
  assert.equal(storeName("/var/lib/img/a b.img"), "var_lib_img_a_b.img");
  assert.equal(storeName("/x/é"), "x___");
  assert.equal(storeName("/" + "a".repeat(300)).length, 128);
  const id = formatSessionId("/dev/vdb", 1795332181123456789);
  assert.equal(id, "dev_vdb_20261122T072301.123456Z");
  assert.deepEqual(parseSessionId(id), { name: "dev_vdb", timeUs: 1795332181123456, suffix: 0 });
  assert.equal(parseSessionId(id + "-2")?.suffix, 2);
  assert.equal(parseSessionId("dev_vdb_20261322T072301.123456Z"), null); // month 13
  assert.equal(parseSessionId("lost+found"), null);
  assert.equal(parseSessionId("a_b_c_20260101T000000.000000Z")?.name, "a_b_c");
});
