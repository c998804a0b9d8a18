/**
 * The TypeScript mirror of the snapshot store format (docs/FORMAT.md): the
 * `blocks.map` header and record of `kmod/include/uapi/bdsnap.h`, the
 * `meta.json` session description, and the session directory name. It is the
 * only such mirror; `tests/unit/uapi_layout_test.ts` compares
 * {@linkcode MAP_STRUCTS} with the C header.
 *
 * The kernel module is the only production writer of a store; the encoders
 * here exist for tests and tools that build synthetic stores.
 *
 * @example
 * ```ts
 * import { decodeMapHeader, encodeMapHeader, MAP_F_WRITE_AHEAD } from "./format.ts";
 * const bytes = encodeMapHeader({
 *   version: 1, chunkSize: 4096, deviceSize: 1 << 20, logicalBlockSize: 512,
 *   flags: MAP_F_WRITE_AHEAD,
 * });
 * decodeMapHeader(bytes).chunkSize; // 4096
 * ```
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";

/** BDSNAP_MAP_MAGIC: the first 8 bytes of every blocks.map. */
export const MAP_MAGIC = "BDSNAPMP";
/** BDSNAP_MAP_VERSION: the blocks.map version this mirror reads and writes. */
export const MAP_VERSION = 1;
/** The `format` of meta.json this mirror understands. */
export const META_FORMAT = 1;

/**
 * Sizes and field offsets of the on-disk structures, in bytes, as
 * `sizeof(struct X)` and `offsetof(struct X, field)` give them.
 */
export const MAP_STRUCTS = {
  bdsnap_map_header: {
    size: 64,
    fields: {
      magic: 0,
      version: 8,
      header_size: 12,
      record_size: 16,
      chunk_size: 20,
      device_size: 24,
      logical_block_size: 32,
      flags: 36,
      fail_errno: 40,
      fail_records: 44,
      reserved: 48,
      header_crc: 60,
    },
  },
  bdsnap_map_record: {
    size: 32,
    fields: {
      dev_offset: 0,
      dat_offset: 8,
      length: 16,
      data_crc: 20,
      seq: 24,
      record_crc: 28,
    },
  },
} as const;

/**
 * BDSNAP_MAP_F_WRITE_AHEAD: every origin write that overwrote a chunk
 * reached the device only after the chunk's record and data were durable,
 * so the map is exact up to its last valid record even after a crash.
 */
export const MAP_F_WRITE_AHEAD = 1;
/** BDSNAP_MAP_F_FAILED: the session failed (`fail_errno`); later writes were not saved. */
export const MAP_F_FAILED = 2;
/** Every flag bit this reader knows; any other bit is a format error. */
export const MAP_F_KNOWN: number = MAP_F_WRITE_AHEAD | MAP_F_FAILED;

/** Size of the blocks.map header: 64. */
export const MAP_HEADER_SIZE: number = MAP_STRUCTS.bdsnap_map_header.size;
/** Size of one blocks.map record: 32. */
export const MAP_RECORD_SIZE: number = MAP_STRUCTS.bdsnap_map_record.size;

const H = MAP_STRUCTS.bdsnap_map_header.fields;
const R = MAP_STRUCTS.bdsnap_map_record.fields;

/** Session directory file names. */
export const FILES = {
  data: "blocks.dat",
  map: "blocks.map",
  meta: "meta.json",
  /** Written by the restorer, never by the module (FORMAT.md, "Superseded sessions"). */
  superseded: "superseded.json",
} as const;

/**
 * The restorer's mark on a session whose changes a restore to an earlier
 * session undid: its own pre-mount state belongs to a discarded history.
 */
export interface SupersededMark {
  /** The session the device was restored to. */
  restoredTo: string;
  /** When the restore finished, ISO 8601. */
  time: string;
}

/** superseded.json's text. */
export function encodeSuperseded(m: SupersededMark): string {
  return JSON.stringify({ format: 1, restored_to: m.restoredTo, time: m.time }) + "\n";
}

/**
 * Parse superseded.json. An unreadable mark still marks the session (the
 * safe reading): its fields then say so.
 */
export function parseSuperseded(text: string): SupersededMark {
  try {
    const j = JSON.parse(text);
    if (typeof j?.restored_to === "string" && typeof j?.time === "string") {
      return { restoredTo: j.restored_to, time: j.time };
    }
  } catch {
    // fall through
  }
  return { restoredTo: "(unreadable superseded.json)", time: "" };
}

/**
 * The store holds something that breaks the format. `offset` is the byte
 * offset in the file where the problem is, when there is one.
 */
export class FormatError extends Error {
  /** Byte offset of the problem in its file, if known. */
  readonly offset: number | undefined;
  /**
   * Make a format error.
   * @param message what breaks the format
   * @param offset where in the file, when known
   */
  constructor(message: string, offset?: number) {
    super(message);
    this.name = "FormatError";
    this.offset = offset;
  }
}

/** The fields of struct bdsnap_map_header that {@linkcode encodeMapHeader} writes. */
export interface MapHeaderFields {
  /** blocks.map version, {@linkcode MAP_VERSION}. */
  version: number;
  /** Copy-on-write unit in bytes. */
  chunkSize: number;
  /** Device size in bytes. */
  deviceSize: number;
  /** Logical block size of the device in bytes. */
  logicalBlockSize: number;
  /** `MAP_F_*` bits. */
  flags: number;
  /** With {@linkcode MAP_F_FAILED}: the positive errno that failed the session; else 0. */
  failErrno?: number;
  /** With {@linkcode MAP_F_FAILED}: records durable when it failed; else 0. */
  failRecords?: number;
}

/** struct bdsnap_map_header, decoded (magic, sizes and CRC are checked, not kept). */
export interface MapHeader extends MapHeaderFields {
  /** {@linkcode MAP_F_WRITE_AHEAD} is set. */
  writeAhead: boolean;
  /** {@linkcode MAP_F_FAILED} is set: failed, whatever meta.json says. */
  failed: boolean;
  /** The positive errno that failed the session, 0 unless failed. */
  failErrno: number;
  /** Records durable when it failed, 0 unless failed. */
  failRecords: number;
}

/** struct bdsnap_map_record, decoded (the record CRC is checked, not kept). */
export interface MapRecord {
  /** Byte offset on the device, a multiple of the chunk size. */
  devOffset: number;
  /** Byte offset of the data in blocks.dat. */
  datOffset: number;
  /** Bytes, a positive multiple of the chunk size. */
  length: number;
  /** CRC-32C of the `length` bytes at `datOffset` in blocks.dat. */
  dataCrc: number;
  /** The record's index in blocks.map. */
  seq: number;
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function getU64(v: DataView, at: number, field: string, base: number): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FormatError(`${field} ${n} is too large`, base + at);
  }
  return Number(n);
}

/** Encode a blocks.map header, computing its `header_crc`. */
export function encodeMapHeader(header: MapHeaderFields): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(MAP_HEADER_SIZE);
  const v = dataView(out);
  out.set(new TextEncoder().encode(MAP_MAGIC), H.magic);
  v.setUint32(H.version, header.version, true);
  v.setUint32(H.header_size, MAP_HEADER_SIZE, true);
  v.setUint32(H.record_size, MAP_RECORD_SIZE, true);
  v.setUint32(H.chunk_size, header.chunkSize, true);
  v.setBigUint64(H.device_size, BigInt(header.deviceSize), true);
  v.setUint32(H.logical_block_size, header.logicalBlockSize, true);
  v.setUint32(H.flags, header.flags, true);
  v.setUint32(H.fail_errno, header.failErrno ?? 0, true);
  v.setUint32(H.fail_records, header.failRecords ?? 0, true);
  v.setUint32(H.header_crc, crc32c(out.subarray(0, H.header_crc)), true);
  return out;
}

/**
 * Decode and check a blocks.map header: length, magic, version, sizes,
 * `header_crc`, flags, and a usable chunk size.
 *
 * @throws {FormatError} when the header is not a valid version 1 header.
 */
export function decodeMapHeader(bytes: Uint8Array): MapHeader {
  if (bytes.length < MAP_HEADER_SIZE) {
    throw new FormatError(
      `map is ${bytes.length} bytes, shorter than its ${MAP_HEADER_SIZE}-byte header`,
      bytes.length,
    );
  }
  const v = dataView(bytes);
  const magic = new TextDecoder().decode(bytes.subarray(H.magic, H.magic + 8));
  if (magic !== MAP_MAGIC) throw new FormatError(`bad magic ${JSON.stringify(magic)}`, H.magic);
  const crc = v.getUint32(H.header_crc, true);
  const want = crc32c(bytes.subarray(0, H.header_crc));
  if (crc !== want) {
    throw new FormatError(
      `bad header_crc 0x${hex(crc)} (computed 0x${hex(want)})`,
      H.header_crc,
    );
  }
  const version = v.getUint32(H.version, true);
  if (version !== MAP_VERSION) {
    throw new FormatError(`unknown map version ${version} (this reader knows 1)`, H.version);
  }
  const headerSize = v.getUint32(H.header_size, true);
  if (headerSize !== MAP_HEADER_SIZE) {
    throw new FormatError(`header_size ${headerSize}, expected ${MAP_HEADER_SIZE}`, H.header_size);
  }
  const recordSize = v.getUint32(H.record_size, true);
  if (recordSize !== MAP_RECORD_SIZE) {
    throw new FormatError(`record_size ${recordSize}, expected ${MAP_RECORD_SIZE}`, H.record_size);
  }
  const flags = v.getUint32(H.flags, true);
  if ((flags & ~MAP_F_KNOWN) !== 0) {
    throw new FormatError(`unknown flags 0x${hex(flags & ~MAP_F_KNOWN)}`, H.flags);
  }
  const failed = (flags & MAP_F_FAILED) !== 0;
  const chunkSize = v.getUint32(H.chunk_size, true);
  if (chunkSize < 512 || chunkSize % 512 !== 0) {
    throw new FormatError(`chunk_size ${chunkSize} is not a multiple of 512`, H.chunk_size);
  }
  const logicalBlockSize = v.getUint32(H.logical_block_size, true);
  if (logicalBlockSize < 512 || chunkSize % logicalBlockSize !== 0) {
    throw new FormatError(
      `logical_block_size ${logicalBlockSize} does not divide chunk_size ${chunkSize}`,
      H.logical_block_size,
    );
  }
  return {
    version,
    chunkSize,
    deviceSize: getU64(v, H.device_size, "device_size", 0),
    logicalBlockSize,
    flags,
    writeAhead: (flags & MAP_F_WRITE_AHEAD) !== 0,
    failed,
    // Only meaningful with FAILED; a stray value elsewhere is not trusted.
    failErrno: failed ? v.getUint32(H.fail_errno, true) : 0,
    failRecords: failed ? v.getUint32(H.fail_records, true) : 0,
  };
}

/** Encode one blocks.map record, computing its `record_crc`. */
export function encodeMapRecord(record: MapRecord): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(MAP_RECORD_SIZE);
  const v = dataView(out);
  v.setBigUint64(R.dev_offset, BigInt(record.devOffset), true);
  v.setBigUint64(R.dat_offset, BigInt(record.datOffset), true);
  v.setUint32(R.length, record.length, true);
  v.setUint32(R.data_crc, record.dataCrc, true);
  v.setUint32(R.seq, record.seq, true);
  v.setUint32(R.record_crc, crc32c(out.subarray(0, R.record_crc)), true);
  return out;
}

/**
 * Decode the record at byte `at` of `bytes` (a whole blocks.map, or any
 * buffer) and check its `record_crc`. Order rules (seq, dense data) are the
 * store reader's business.
 *
 * @throws {FormatError} when the record is cut short or its CRC is wrong;
 * the error's offset is `at`.
 */
export function decodeMapRecord(bytes: Uint8Array, at = 0): MapRecord {
  if (bytes.length - at < MAP_RECORD_SIZE) {
    throw new FormatError(
      `record cut short: ${bytes.length - at} of ${MAP_RECORD_SIZE} bytes`,
      at,
    );
  }
  const rec = bytes.subarray(at, at + MAP_RECORD_SIZE);
  const v = dataView(rec);
  const crc = v.getUint32(R.record_crc, true);
  const want = crc32c(rec.subarray(0, R.record_crc));
  if (crc !== want) {
    throw new FormatError(`bad record_crc 0x${hex(crc)} (computed 0x${hex(want)})`, at);
  }
  return {
    devOffset: getU64(v, R.dev_offset, "dev_offset", at),
    datOffset: getU64(v, R.dat_offset, "dat_offset", at),
    length: v.getUint32(R.length, true),
    dataCrc: v.getUint32(R.data_crc, true),
    seq: v.getUint32(R.seq, true),
  };
}

/** The states meta.json can record. */
export const META_STATES = ["open", "closed", "failed"] as const;
/** A state recorded in meta.json. */
export type MetaState = typeof META_STATES[number];

/** The device kinds meta.json can record. */
export const DEVICE_KINDS = ["block", "file"] as const;
/** A device kind recorded in meta.json. */
export type DeviceKind = typeof DEVICE_KINDS[number];

/**
 * The guarantees a session's pre-images can have (meta.json `durability`):
 * `write-ahead`, every overwritten chunk was durable in the store before the
 * write reached the device; `flush`, pre-images were durable only at the next
 * origin flush (older modules, which do not record the field).
 */
export const DURABILITIES = ["write-ahead", "flush"] as const;
/** A durability guarantee. */
export type Durability = typeof DURABILITIES[number];

/**
 * meta.json, decoded. The JSON names are the snake_case forms of these
 * (`logicalBlockSize` is `logical_block_size`); see docs/FORMAT.md.
 */
export interface SessionMeta {
  /** meta.json format, {@linkcode META_FORMAT}. */
  format: number;
  /** The session id: the directory name. */
  id: string;
  /** The path given at activation (block device or image file). */
  device: string;
  /**
   * The device's stable identity (docs/FORMAT.md, "Device identity"):
   * `wwn:…`, `serial:…`, `partuuid:…`, `dm-uuid:…`, `md-uuid:…` or
   * `file:<dev>:<ino>:<path>`; "" when none was recorded (an older module,
   * or a session that opened before `bdsnap activate` set it).
   */
  identity: string;
  /** What `device` is. */
  kind: DeviceKind;
  /** `major:minor` of the block device that was mounted. */
  dev: string;
  /** Device size in bytes. */
  size: number;
  /** Logical block size in bytes. */
  logicalBlockSize: number;
  /** Copy-on-write unit in bytes. */
  chunkSize: number;
  /** Filesystem type of the mount. */
  fsType: string;
  /** 1 for the first session after activation, then 2, 3, … */
  seq: number;
  /** Mount time, Unix epoch, nanoseconds (a JSON number: exact to ~256 ns). */
  mountTimeNs: number;
  /**
   * How the session began: at a `mount` (its pre-state is the device before
   * the mount), or at `activation` of a device whose filesystem was mounted
   * already (its pre-state is that filesystem frozen, at `mountTimeNs`).
   * `mount` when meta.json has no `began` (older modules).
   */
  began: SessionStart;
  /** End time, or 0 while open. */
  endTimeNs: number;
  /** Session state as the module recorded it. */
  state: MetaState;
  /** Why the session failed, or "". */
  error: string;
  /** Records in blocks.map. */
  records: number;
  /** Bytes in blocks.dat. */
  bytes: number;
  /** Write bios the device received outside any session before this mount. */
  unmountedWritesBefore: number;
  /**
   * Write bios the device received outside any session after this session
   * closed and before the device was deactivated: written by the module into
   * the last session of an activation when the device is deactivated; 0 until
   * then, and 0 when meta.json has no `unmounted_writes_after` (older modules).
   */
  unmountedWritesAfter: number;
  /**
   * When the device was deactivated after this session, Unix epoch,
   * nanoseconds; 0 while it was not (or meta.json has no `deactivated_ns`).
   */
  deactivatedNs: number;
  /**
   * The recorded guarantee, or `null` when meta.json has no `durability`
   * (an older module: it means `flush`, see {@linkcode metaDurability}).
   */
  durability: Durability | null;
}

/** How sessions can begin (meta.json `began`). */
export const SESSION_STARTS = ["mount", "activation"] as const;
/** How a session began. */
export type SessionStart = typeof SESSION_STARTS[number];

/** The guarantee meta.json claims: its `durability`, `flush` when absent. */
export function metaDurability(meta: SessionMeta): Durability {
  return meta.durability ?? "flush";
}

type FieldType = "string" | "count" | "positive" | "time";

const META_FIELDS: ReadonlyArray<readonly [keyof SessionMeta, string, FieldType]> = [
  ["format", "format", "positive"],
  ["id", "id", "string"],
  ["device", "device", "string"],
  ["kind", "kind", "string"],
  ["dev", "dev", "string"],
  ["size", "size", "count"],
  ["logicalBlockSize", "logical_block_size", "positive"],
  ["chunkSize", "chunk_size", "positive"],
  ["fsType", "fs_type", "string"],
  ["seq", "seq", "positive"],
  ["mountTimeNs", "mount_time_ns", "time"],
  ["endTimeNs", "end_time_ns", "time"],
  ["state", "state", "string"],
  ["error", "error", "string"],
  ["records", "records", "count"],
  ["bytes", "bytes", "count"],
  ["unmountedWritesBefore", "unmounted_writes_before", "count"],
];

/**
 * Fields that modules before the persisted outside-a-session count do not
 * write: absent reads as 0, present they are checked like the others.
 */
const OPTIONAL_META_FIELDS: ReadonlyArray<readonly [keyof SessionMeta, string, FieldType]> = [
  ["unmountedWritesAfter", "unmounted_writes_after", "count"],
  ["deactivatedNs", "deactivated_ns", "time"],
  ["identity", "identity", "string"],
  ["began", "began", "string"],
];

/**
 * Every key meta.json can have, as the module writes them (required ones,
 * then the optional ones): for tools and for the test that compares them with
 * the keys kmod/session.c writes.
 */
export const META_KEYS: readonly string[] = [
  ...META_FIELDS.map(([, json]) => json),
  ...OPTIONAL_META_FIELDS.map(([, json]) => json),
  "durability",
];

/** `value` has the field type `type`; else a FormatError naming `json`. */
function checkField(json: string, type: FieldType, value: unknown): void {
  const ok = type === "string"
    ? typeof value === "string"
    : type === "time"
    ? typeof value === "number" && Number.isFinite(value) && value >= 0
    : Number.isSafeInteger(value) && (value as number) >= (type === "positive" ? 1 : 0);
  if (ok) return;
  const want = type === "string"
    ? "a string"
    : type === "time"
    ? "a non-negative number"
    : type === "positive"
    ? "a positive integer"
    : "a non-negative integer";
  throw new FormatError(`meta.json "${json}" must be ${want}, not ${JSON.stringify(value)}`);
}

/**
 * Parse and check meta.json. Unknown extra fields are ignored; every field
 * of format 1 must be present with the right type, except those older
 * modules did not write (`durability`, `unmounted_writes_after`,
 * `deactivated_ns`, `identity`, `began`), which are checked when present.
 *
 * @param data The file's bytes (must be UTF-8) or text.
 * @throws {FormatError} naming the field, or with the byte offset of a JSON
 * syntax error.
 */
export function parseMeta(data: Uint8Array | string): SessionMeta {
  let text: string;
  if (typeof data === "string") {
    text = data;
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(data);
    } catch {
      throw new FormatError("meta.json is not valid UTF-8");
    }
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const pos = /position (\d+)/.exec(msg);
    throw new FormatError(`meta.json is not valid JSON (${msg})`, pos ? Number(pos[1]) : undefined);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FormatError("meta.json is not a JSON object");
  }
  const obj = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, json, type] of META_FIELDS) {
    const value = obj[json];
    if (value === undefined) throw new FormatError(`meta.json has no "${json}"`);
    checkField(json, type, value);
    out[key] = value;
  }
  for (const [key, json, type] of OPTIONAL_META_FIELDS) {
    const value = obj[json];
    if (value !== undefined) checkField(json, type, value);
    out[key] = value ?? (type === "string" ? "" : 0);
  }
  const meta = out as unknown as SessionMeta;
  if (meta.format !== META_FORMAT) {
    throw new FormatError(`meta.json format ${meta.format} is unknown (this reader knows 1)`);
  }
  if (!(DEVICE_KINDS as readonly string[]).includes(meta.kind)) {
    throw new FormatError(`meta.json "kind" ${JSON.stringify(meta.kind)} is unknown`);
  }
  if ((meta.began as string) === "") meta.began = "mount";
  if (!(SESSION_STARTS as readonly string[]).includes(meta.began)) {
    throw new FormatError(`meta.json "began" ${JSON.stringify(meta.began)} is unknown`);
  }
  if (!(META_STATES as readonly string[]).includes(meta.state)) {
    throw new FormatError(`meta.json "state" ${JSON.stringify(meta.state)} is unknown`);
  }
  if (!/^\d+:\d+$/.test(meta.dev)) {
    throw new FormatError(`meta.json "dev" ${JSON.stringify(meta.dev)} is not major:minor`);
  }
  if (meta.device === "") throw new FormatError(`meta.json "device" is empty`);
  // Optional: older modules do not write it.
  const durability = obj.durability;
  if (durability !== undefined && !(DURABILITIES as readonly unknown[]).includes(durability)) {
    throw new FormatError(`meta.json "durability" ${JSON.stringify(durability)} is unknown`);
  }
  meta.durability = (durability as Durability | undefined) ?? null;
  return meta;
}

/**
 * Encode meta.json (pretty-printed, with a final newline), with every field
 * the current module writes; `durability` only when not `null`.
 */
export function encodeMeta(meta: SessionMeta): string {
  const obj: Record<string, unknown> = {};
  for (const [key, json] of [...META_FIELDS, ...OPTIONAL_META_FIELDS]) obj[json] = meta[key];
  if (meta.durability !== null) obj.durability = meta.durability;
  return JSON.stringify(obj, null, 2) + "\n";
}

/** Longest `<name>` part of a session directory name, in bytes. */
export const STORE_NAME_MAX = 128;

/**
 * The `<name>` part of a session directory for an activation path: the
 * leading `/` dropped, every `/` made `_`, every byte outside
 * `[A-Za-z0-9._-]` made `_`, truncated to 128 bytes.
 *
 * @example
 * ```ts
 * import { storeName } from "./format.ts";
 * storeName("/dev/vdb"); // "dev_vdb"
 * storeName("/var/lib/img/a b.img"); // "var_lib_img_a_b.img"
 * ```
 */
export function storeName(devicePath: string): string {
  const bytes = new TextEncoder().encode(
    devicePath.startsWith("/") ? devicePath.slice(1) : devicePath,
  );
  let out = "";
  for (const b of bytes.subarray(0, STORE_NAME_MAX)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._-]/.test(c) ? c : "_";
  }
  return out;
}

/** A session id taken apart. */
export interface SessionIdParts {
  /** The `<name>` part. */
  name: string;
  /** The mount time from the id, Unix epoch, microseconds. */
  timeUs: number;
  /** The `-N` suffix, or 0 without one. */
  suffix: number;
}

const ID_RE = /^(.+)_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{6})Z(?:-([1-9]\d{0,8}))?$/;

/** Take a session id (directory name) apart; `null` if it is not one. */
export function parseSessionId(id: string): SessionIdParts | null {
  const m = ID_RE.exec(id);
  if (!m) return null;
  const [y, mo, d, h, mi, s, us] = m.slice(2, 9).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) {
    return null;
  }
  return { name: m[1], timeUs: ms * 1000 + us, suffix: m[9] ? Number(m[9]) : 0 };
}

/** The session id for a device mounted at `mountTimeNs`, with an optional `-N` suffix. */
export function formatSessionId(devicePath: string, mountTimeNs: number, suffix = 0): string {
  const us = Math.floor(mountTimeNs / 1000);
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // 2026-11-22T07:23:01.123Z
  const stamp = iso.slice(0, 19).replace(/[-:]/g, "") + "." +
    String(us % 1_000_000).padStart(6, "0") + "Z";
  return `${storeName(devicePath)}_${stamp}${suffix > 0 ? `-${suffix}` : ""}`;
}

function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}
