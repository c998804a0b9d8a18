/**
 * The TypeScript mirror of the control ABI in `kmod/include/uapi/bdsnap.h`:
 * constants, structure sizes and field offsets, ioctl request numbers, and
 * encoders/decoders for the structures. It is the only such mirror; the
 * on-disk structures (`bdsnap_map_header`, `bdsnap_map_record`) live in
 * `lib/format.ts`. `tests/unit/uapi_layout_test.ts` compares
 * {@linkcode STRUCTS} and {@linkcode IOCTL} with the C header.
 *
 * All integers are in the machine's byte order, which on every architecture
 * bdsnap supports is little-endian. `__u64` counters are decoded as numbers
 * (exact below 2^53).
 *
 * @module
 */

/** BDSNAP_ABI_VERSION: the ABI this mirror describes. */
export const ABI_VERSION = 1;
/** BDSNAP_CTL_NAME: the control device is /dev/bdsnap. */
export const CTL_NAME = "bdsnap";
/** BDSNAP_PASSWD_MAX: longest password, including the terminating NUL. */
export const PASSWD_MAX = 256;
/** BDSNAP_HASH_MAX: longest password-hash string, including the terminating NUL. */
export const HASH_MAX = 256;
/** BDSNAP_NAME_LEN: size of device name fields. */
export const NAME_LEN = 1024;
/** BDSNAP_SESSION_ID_LEN: size of session id fields. */
export const SESSION_ID_LEN = 256;
/** BDSNAP_STORE_ROOT_LEN: size of the store root field. */
export const STORE_ROOT_LEN = 256;
/** BDSNAP_IDENTITY_LEN: size of a device's stable identity, including the terminating NUL. */
export const IDENTITY_LEN = 512;
/** BDSNAP_VERSION_F_PASSWORD_SET. */
export const VERSION_F_PASSWORD_SET = 1 << 0;
/** BDSNAP_DEV_F_DEACTIVATING. */
export const DEV_F_DEACTIVATING = 1 << 0;
/** BDSNAP_IOC_MAGIC. */
export const IOC_MAGIC = 0xb5;

/** enum bdsnap_session_state. */
export const SESSION_STATE = { NONE: 0, OPEN: 1, FAILED: 2 } as const;
/** enum bdsnap_device_kind. */
export const DEVICE_KIND = { BLOCK: 1, FILE: 2 } as const;

/**
 * Sizes and field offsets of every control structure, in bytes, as
 * `sizeof(struct X)` and `offsetof(struct X, field)` give them.
 */
export const STRUCTS = {
  bdsnap_target: { size: 16, fields: { path: 0, passwd: 8 } },
  bdsnap_version: {
    size: 288,
    fields: {
      major: 0,
      minor: 4,
      patch: 8,
      abi: 12,
      nr_activate: 16,
      nr_deactivate: 20,
      flags: 24,
      chunk_size: 28,
      store_root: 32,
    },
  },
  bdsnap_status: {
    size: 64,
    fields: {
      devices: 0,
      sessions: 4,
      inflight_bytes: 8,
      inflight_peak: 16,
      inflight_limit: 24,
      chunks_saved: 32,
      bytes_saved: 40,
      sessions_failed: 48,
      auth_failures: 56,
    },
  },
  bdsnap_device_info: {
    size: 1344,
    fields: {
      name: 0,
      session_id: 1024,
      kind: 1280,
      state: 1284,
      major: 1288,
      minor: 1292,
      error: 1296,
      flags: 1300,
      sessions: 1304,
      chunks_saved: 1312,
      bytes_saved: 1320,
      pending_bytes: 1328,
      unmounted_writes: 1336,
    },
  },
  bdsnap_list: { size: 16, fields: { devices: 0, capacity: 8, count: 12 } },
  bdsnap_passwd_change: { size: 16, fields: { old_passwd: 0, new_hash: 8 } },
  bdsnap_identity: { size: 24, fields: { path: 0, passwd: 8, identity: 16 } },
  bdsnap_protect_mount: { size: 24, fields: { path: 0, passwd: 8, mount_fd: 16, flags: 20 } },
} as const;

/** _IOC direction bits (asm-generic/ioctl.h). */
export const IOC_NONE = 0;
/** _IOC_WRITE: user space writes, the kernel reads. */
export const IOC_WRITE = 1;
/** _IOC_READ: the kernel writes, user space reads. */
export const IOC_READ = 2;

/** _IOC(dir, type, nr, size) as asm-generic/ioctl.h encodes it. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  // dir:2 at bit 30, size:14 at bit 16, type:8 at bit 8, nr:8 at bit 0.
  // `>>> 0` keeps the result an unsigned 32-bit number.
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

/** The ioctl request numbers of /dev/bdsnap (BDSNAP_IOC_*). */
export const IOCTL = {
  ACTIVATE: ioc(IOC_WRITE, IOC_MAGIC, 1, STRUCTS.bdsnap_target.size),
  DEACTIVATE: ioc(IOC_WRITE, IOC_MAGIC, 2, STRUCTS.bdsnap_target.size),
  VERSION: ioc(IOC_READ, IOC_MAGIC, 3, STRUCTS.bdsnap_version.size),
  STATUS: ioc(IOC_READ, IOC_MAGIC, 4, STRUCTS.bdsnap_status.size),
  LIST: ioc(IOC_READ | IOC_WRITE, IOC_MAGIC, 5, STRUCTS.bdsnap_list.size),
  SET_PASSWORD: ioc(IOC_WRITE, IOC_MAGIC, 6, STRUCTS.bdsnap_passwd_change.size),
  SET_IDENTITY: ioc(IOC_WRITE, IOC_MAGIC, 7, STRUCTS.bdsnap_identity.size),
  PROTECT_MOUNT: ioc(IOC_WRITE, IOC_MAGIC, 8, STRUCTS.bdsnap_protect_mount.size),
} as const;

/** struct bdsnap_version, decoded. */
export interface VersionInfo {
  major: number;
  minor: number;
  patch: number;
  abi: number;
  nrActivate: number;
  nrDeactivate: number;
  flags: number;
  chunkSize: number;
  storeRoot: string;
}

/** struct bdsnap_status, decoded. */
export interface StatusInfo {
  devices: number;
  sessions: number;
  inflightBytes: number;
  inflightPeak: number;
  inflightLimit: number;
  chunksSaved: number;
  bytesSaved: number;
  sessionsFailed: number;
  authFailures: number;
}

/** struct bdsnap_device_info, decoded. */
export interface DeviceInfo {
  name: string;
  sessionId: string;
  kind: number;
  state: number;
  major: number;
  minor: number;
  /** Negative errno that failed the session, or 0. */
  error: number;
  flags: number;
  sessions: number;
  chunksSaved: number;
  bytesSaved: number;
  pendingBytes: number;
  unmountedWrites: number;
}

function view(buf: Uint8Array, offset = 0): DataView {
  return new DataView(buf.buffer, buf.byteOffset + offset);
}

function u64(v: DataView, off: number): number {
  return Number(v.getBigUint64(off, true));
}

/** A NUL-terminated (or field-filling) UTF-8 string from `buf[off, off+len)`. */
export function decodeCString(buf: Uint8Array, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return new TextDecoder().decode(nul === -1 ? field : field.subarray(0, nul));
}

/** Encode struct bdsnap_target from two user addresses. */
export function encodeTarget(path: bigint, passwd: bigint): Uint8Array<ArrayBuffer> {
  const s = STRUCTS.bdsnap_target;
  const buf = new Uint8Array(new ArrayBuffer(s.size));
  const v = view(buf);
  v.setBigUint64(s.fields.path, path, true);
  v.setBigUint64(s.fields.passwd, passwd, true);
  return buf;
}

/** Encode struct bdsnap_passwd_change from two user addresses (old may be 0). */
export function encodePasswdChange(oldPasswd: bigint, newHash: bigint): Uint8Array<ArrayBuffer> {
  const s = STRUCTS.bdsnap_passwd_change;
  const buf = new Uint8Array(new ArrayBuffer(s.size));
  const v = view(buf);
  v.setBigUint64(s.fields.old_passwd, oldPasswd, true);
  v.setBigUint64(s.fields.new_hash, newHash, true);
  return buf;
}

/** Encode struct bdsnap_identity from three user addresses. */
export function encodeIdentity(
  path: bigint,
  passwd: bigint,
  identity: bigint,
): Uint8Array<ArrayBuffer> {
  const s = STRUCTS.bdsnap_identity;
  const buf = new Uint8Array(new ArrayBuffer(s.size));
  const v = view(buf);
  v.setBigUint64(s.fields.path, path, true);
  v.setBigUint64(s.fields.passwd, passwd, true);
  v.setBigUint64(s.fields.identity, identity, true);
  return buf;
}

/** Encode struct bdsnap_protect_mount from two user addresses and a file descriptor. */
export function encodeProtectMount(
  path: bigint,
  passwd: bigint,
  mountFd: number,
): Uint8Array<ArrayBuffer> {
  const s = STRUCTS.bdsnap_protect_mount;
  const buf = new Uint8Array(new ArrayBuffer(s.size));
  const v = view(buf);
  v.setBigUint64(s.fields.path, path, true);
  v.setBigUint64(s.fields.passwd, passwd, true);
  v.setInt32(s.fields.mount_fd, mountFd, true);
  v.setUint32(s.fields.flags, 0, true);
  return buf;
}

/** Encode struct bdsnap_list for an array at `devices` holding `capacity` entries. */
export function encodeList(devices: bigint, capacity: number): Uint8Array<ArrayBuffer> {
  const s = STRUCTS.bdsnap_list;
  const buf = new Uint8Array(new ArrayBuffer(s.size));
  const v = view(buf);
  v.setBigUint64(s.fields.devices, devices, true);
  v.setUint32(s.fields.capacity, capacity, true);
  return buf;
}

/** The `count` field of a struct bdsnap_list the kernel filled in. */
export function decodeListCount(buf: Uint8Array): number {
  return view(buf).getUint32(STRUCTS.bdsnap_list.fields.count, true);
}

/** Decode struct bdsnap_version. */
export function decodeVersion(buf: Uint8Array): VersionInfo {
  const f = STRUCTS.bdsnap_version.fields;
  const v = view(buf);
  return {
    major: v.getUint32(f.major, true),
    minor: v.getUint32(f.minor, true),
    patch: v.getUint32(f.patch, true),
    abi: v.getUint32(f.abi, true),
    nrActivate: v.getInt32(f.nr_activate, true),
    nrDeactivate: v.getInt32(f.nr_deactivate, true),
    flags: v.getUint32(f.flags, true),
    chunkSize: v.getUint32(f.chunk_size, true),
    storeRoot: decodeCString(buf, f.store_root, STORE_ROOT_LEN),
  };
}

/** Decode struct bdsnap_status. */
export function decodeStatus(buf: Uint8Array): StatusInfo {
  const f = STRUCTS.bdsnap_status.fields;
  const v = view(buf);
  return {
    devices: v.getUint32(f.devices, true),
    sessions: v.getUint32(f.sessions, true),
    inflightBytes: u64(v, f.inflight_bytes),
    inflightPeak: u64(v, f.inflight_peak),
    inflightLimit: u64(v, f.inflight_limit),
    chunksSaved: u64(v, f.chunks_saved),
    bytesSaved: u64(v, f.bytes_saved),
    sessionsFailed: u64(v, f.sessions_failed),
    authFailures: u64(v, f.auth_failures),
  };
}

/** Decode the struct bdsnap_device_info at byte `offset` of `buf`. */
export function decodeDeviceInfo(buf: Uint8Array, offset = 0): DeviceInfo {
  const f = STRUCTS.bdsnap_device_info.fields;
  const v = view(buf, offset);
  const at = buf.subarray(offset, offset + STRUCTS.bdsnap_device_info.size);
  return {
    name: decodeCString(at, f.name, NAME_LEN),
    sessionId: decodeCString(at, f.session_id, SESSION_ID_LEN),
    kind: v.getUint32(f.kind, true),
    state: v.getUint32(f.state, true),
    major: v.getUint32(f.major, true),
    minor: v.getUint32(f.minor, true),
    error: v.getInt32(f.error, true),
    flags: v.getUint32(f.flags, true),
    sessions: u64(v, f.sessions),
    chunksSaved: u64(v, f.chunks_saved),
    bytesSaved: u64(v, f.bytes_saved),
    pendingBytes: u64(v, f.pending_bytes),
    unmountedWrites: u64(v, f.unmounted_writes),
  };
}
