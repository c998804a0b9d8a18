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
  MAP_F_FAILED,
  MAP_F_WRITE_AHEAD,
  MAP_HEADER_SIZE,
  MAP_RECORD_SIZE,
  META_KEYS,
  metaDurability,
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
  // A header of an older module: no flags, the weaker guarantee.
  assert.deepEqual(decodeMapHeader(bytes), {
    ...h,
    writeAhead: false,
    failed: false,
    failErrno: 0,
    failRecords: 0,
  });

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
  assert.throws(
    () => decodeMapHeader(encodeMapHeader({ ...h, flags: MAP_F_WRITE_AHEAD | 4 })),
    (e) =>
      e instanceof FormatError && e.offset === 36 && /unknown flags 0x00000004/.test(e.message),
  );
  assert.throws(() => decodeMapHeader(encodeMapHeader({ ...h, flags: 1 << 31 })), /unknown flags/);
  assert.throws(() => decodeMapHeader(encodeMapHeader({ ...h, chunkSize: 1000 })), /chunk_size/);
});

Deno.test("format: header flags WRITE_AHEAD and FAILED, with fail_errno and fail_records", () => {
  const base = { version: 1, chunkSize: 4096, deviceSize: 1 << 30, logicalBlockSize: 4096 };
  const wa = decodeMapHeader(encodeMapHeader({ ...base, flags: MAP_F_WRITE_AHEAD }));
  assert.deepEqual([wa.writeAhead, wa.failed, wa.failErrno, wa.failRecords], [true, false, 0, 0]);
  const bytes = encodeMapHeader({
    ...base,
    flags: MAP_F_WRITE_AHEAD | MAP_F_FAILED,
    failErrno: 28,
    failRecords: 513,
  });
  // The byte layout the kernel writes: flags at 36, fail_errno at 40, fail_records at 44.
  const v = new DataView(bytes.buffer);
  assert.deepEqual([v.getUint32(36, true), v.getUint32(40, true), v.getUint32(44, true)], [
    3,
    28,
    513,
  ]);
  assert.deepEqual(bytes.subarray(48, 60), new Uint8Array(12), "reserved stays zero");
  assert.equal(v.getUint32(60, true), crc32c(bytes.subarray(0, 60)));
  const failed = decodeMapHeader(bytes);
  assert.deepEqual(
    [failed.writeAhead, failed.failed, failed.failErrno, failed.failRecords],
    [true, true, 28, 513],
  );
  // FAILED alone (an older durability that failed) is valid too.
  assert.equal(decodeMapHeader(encodeMapHeader({ ...base, flags: MAP_F_FAILED })).failed, true);
  // fail_* without FAILED are not believed.
  const stray = decodeMapHeader(encodeMapHeader({ ...base, flags: 0, failErrno: 5 }));
  assert.deepEqual([stray.failed, stray.failErrno], [false, 0]);
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
    identity: "serial:bdsnap-disk0",
    kind: "block",
    dev: "254:16",
    size: 1 << 30,
    logicalBlockSize: 512,
    chunkSize: 4096,
    fsType: "ext4",
    seq: 1,
    mountTimeNs: 1795332181123456789,
    began: "mount",
    endTimeNs: 0,
    state: "open",
    error: "",
    records: 0,
    bytes: 0,
    unmountedWritesBefore: 0,
    unmountedWritesAfter: 0,
    deactivatedNs: 0,
    durability: "write-ahead",
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
  assert.match(text, /"durability": "write-ahead"/);
});

Deno.test("format: meta.json durability is optional (older modules) and checked", () => {
  const { durability: _, ...old } = JSON.parse(encodeMeta(meta()));
  const parsed = parseMeta(JSON.stringify(old));
  assert.equal(parsed.durability, null);
  assert.equal(metaDurability(parsed), "flush");
  assert.doesNotMatch(encodeMeta(parsed), /durability/, "written back as it was");
  assert.equal(metaDurability(parseMeta(JSON.stringify({ ...old, durability: "flush" }))), "flush");
  assert.throws(
    () => parseMeta(JSON.stringify({ ...old, durability: "sync" })),
    /"durability" "sync" is unknown/,
  );
});

Deno.test("format: meta.json unmounted_writes_after and deactivated_ns: absent is 0", () => {
  // A meta.json of a module before these fields.
  const { unmounted_writes_after: _a, deactivated_ns: _d, ...old } = JSON.parse(
    encodeMeta(meta({ state: "closed", endTimeNs: 1795332190000000000 })),
  );
  assert.ok(!("unmounted_writes_after" in old) && !("deactivated_ns" in old));
  const parsed = parseMeta(JSON.stringify(old));
  assert.equal(parsed.unmountedWritesAfter, 0);
  assert.equal(parsed.deactivatedNs, 0);
  // Present: read as written, and written back, right after unmounted_writes_before.
  const m = meta({
    state: "closed",
    endTimeNs: 1795332190000000000,
    unmountedWritesAfter: 3,
    deactivatedNs: 1795332250000000000,
  });
  const text = encodeMeta(m);
  assert.deepEqual(parseMeta(text), m);
  const keys = Object.keys(JSON.parse(text));
  const at = keys.indexOf("unmounted_writes_before");
  assert.deepEqual(keys.slice(at, at + 3), [
    "unmounted_writes_before",
    "unmounted_writes_after",
    "deactivated_ns",
  ]);
  assert.match(text, /"unmounted_writes_after": 3/);
  assert.match(text, /"deactivated_ns": 1795332250000000000/);
  // Present with 0, as the module writes them at close.
  const zero = parseMeta(JSON.stringify({ ...old, unmounted_writes_after: 0, deactivated_ns: 0 }));
  assert.deepEqual([zero.unmountedWritesAfter, zero.deactivatedNs], [0, 0]);
});

Deno.test("format: meta.json unmounted_writes_after and deactivated_ns: wrong types name the field", () => {
  const obj = JSON.parse(encodeMeta(meta()));
  const bad = (o: unknown, re: RegExp) =>
    assert.throws(
      () => parseMeta(JSON.stringify(o)),
      (e) => e instanceof FormatError && re.test(e.message),
    );
  const after = /meta\.json "unmounted_writes_after" must be a non-negative integer/;
  bad({ ...obj, unmounted_writes_after: "3" }, after);
  bad({ ...obj, unmounted_writes_after: -1 }, after);
  bad({ ...obj, unmounted_writes_after: 1.5 }, after);
  bad({ ...obj, unmounted_writes_after: null }, after);
  bad({ ...obj, unmounted_writes_after: true }, after);
  const deact = /meta\.json "deactivated_ns" must be a non-negative number/;
  bad({ ...obj, deactivated_ns: "1795332250000000000" }, deact);
  bad({ ...obj, deactivated_ns: -1 }, deact);
  bad({ ...obj, deactivated_ns: null }, deact);
  bad({ ...obj, deactivated_ns: {} }, deact);
});

Deno.test("format: META_KEYS lists every key encodeMeta writes", () => {
  assert.deepEqual(
    [...META_KEYS].sort(),
    Object.keys(JSON.parse(encodeMeta(meta()))).sort(),
  );
  assert.equal(new Set(META_KEYS).size, META_KEYS.length);
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

Deno.test("format: meta.json began: absent is a mount (older modules), activation kept, others refused", () => {
  const { began: _, ...old } = JSON.parse(encodeMeta(meta()));
  assert.equal(parseMeta(JSON.stringify(old)).began, "mount");
  const live = parseMeta(encodeMeta(meta({ began: "activation" })));
  assert.equal(live.began, "activation");
  assert.match(encodeMeta(live), /"began": "activation"/);
  assert.throws(
    () => parseMeta(JSON.stringify({ ...old, began: "boot" })),
    /"began" "boot" is unknown/,
  );
  assert.throws(() => parseMeta(JSON.stringify({ ...old, began: 1 })), /"began" must be a string/);
});
