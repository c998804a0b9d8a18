import assert from "node:assert/strict";
import {
  addressOf,
  alloc,
  close,
  cstring,
  ERRNO,
  errnoDescription,
  ErrnoError,
  errnoName,
  fsync,
  geteuid,
  ioctl,
  mapReadOnly,
  O_RDONLY,
  open,
  pipe,
  pollAsync,
  POLLIN,
  pread,
  statvfs,
  syscall,
  write,
} from "../../ffi/libc.ts";
import { rawErrno, rawSyscall } from "../../ffi/raw_syscall.ts";
import {
  decodeDeviceInfo,
  decodeListCount,
  decodeStatus,
  decodeVersion,
  encodeList,
  encodePasswdChange,
  encodeTarget,
  ioc,
  IOC_READ,
  IOC_WRITE,
  IOCTL,
  STRUCTS,
} from "../../ffi/uapi.ts";
import { ModuleNotLoadedError, syscallNumbers } from "../../ffi/control.ts";

Deno.test("errno: names and descriptions of the errors the module returns", () => {
  const want: Record<string, number> = {
    EPERM: 1,
    ENOENT: 2,
    EFAULT: 14,
    ENOTBLK: 15,
    EBUSY: 16,
    EXDEV: 18,
    EINVAL: 22,
    ENOTTY: 25,
    EAGAIN: 11,
    ENAMETOOLONG: 36,
    ENOSYS: 38,
    EALREADY: 114,
    EMEDIUMTYPE: 124,
    EKEYREJECTED: 129,
  };
  for (const [name, n] of Object.entries(want)) {
    assert.equal(ERRNO[name], n, name);
    assert.equal(errnoName(n), name);
    assert.equal(errnoName(-n), name, "negative errno from the kernel");
  }
  assert.equal(errnoDescription(1), "Operation not permitted");
  assert.equal(errnoName(4000), "E4000");
  assert.equal(errnoDescription(4000), "Unknown error 4000");
  const e = new ErrnoError("activate", 114);
  assert.equal(e.code, "EALREADY");
  assert.equal(e.message, "activate: Operation already in progress (EALREADY)");
});

Deno.test("uapi: _IOC encoding and the request numbers", () => {
  assert.equal(ioc(IOC_WRITE, 0xb5, 1, 16), 0x4010b501);
  assert.equal(IOCTL.ACTIVATE, 0x4010b501);
  assert.equal(IOCTL.DEACTIVATE, 0x4010b502);
  assert.equal(IOCTL.VERSION, 0x8120b503);
  assert.equal(IOCTL.STATUS, 0x8040b504);
  assert.equal(IOCTL.LIST, 0xc010b505);
  assert.equal(IOCTL.SET_PASSWORD, 0x4010b506);
  assert.equal(ioc(IOC_READ | IOC_WRITE, 0xb5, 5, 16) >>> 30, 3);
});

Deno.test("uapi: structures are naturally aligned and padded to 8", () => {
  for (const [name, s] of Object.entries(STRUCTS)) {
    assert.equal(s.size % 8, 0, `${name} size`);
    const offs = Object.values(s.fields as Record<string, number>);
    assert.deepEqual([...offs].sort((a, b) => a - b), offs, `${name} fields in order`);
  }
});

Deno.test("uapi: encoders and decoders round-trip", () => {
  const t = encodeTarget(0x1122334455667788n, 0x99n);
  const tv = new DataView(t.buffer);
  assert.equal(tv.getBigUint64(0, true), 0x1122334455667788n);
  assert.equal(tv.getBigUint64(8, true), 0x99n);
  const p = encodePasswdChange(0n, 42n);
  assert.equal(new DataView(p.buffer).getBigUint64(8, true), 42n);
  const l = encodeList(0x1000n, 7);
  new DataView(l.buffer).setUint32(12, 3, true); // what the kernel fills in
  assert.equal(decodeListCount(l), 3);
  assert.equal(new DataView(l.buffer).getUint32(8, true), 7);

  const vb = new Uint8Array(STRUCTS.bdsnap_version.size);
  const vv = new DataView(vb.buffer);
  [0, 1, 2, 1, 335, 336, 1, 4096].forEach((x, i) => vv.setUint32(i * 4, x, true));
  vb.set(new TextEncoder().encode("/snapshot"), 32);
  assert.deepEqual(decodeVersion(vb), {
    major: 0,
    minor: 1,
    patch: 2,
    abi: 1,
    nrActivate: 335,
    nrDeactivate: 336,
    flags: 1,
    chunkSize: 4096,
    storeRoot: "/snapshot",
  });

  const sb = new Uint8Array(STRUCTS.bdsnap_status.size);
  const sv = new DataView(sb.buffer);
  sv.setUint32(0, 2, true);
  sv.setUint32(4, 1, true);
  for (let i = 0; i < 7; i++) sv.setBigUint64(8 + i * 8, BigInt(100 + i), true);
  assert.deepEqual(decodeStatus(sb), {
    devices: 2,
    sessions: 1,
    inflightBytes: 100,
    inflightPeak: 101,
    inflightLimit: 102,
    chunksSaved: 103,
    bytesSaved: 104,
    sessionsFailed: 105,
    authFailures: 106,
  });

  const size = STRUCTS.bdsnap_device_info.size;
  const arr = new Uint8Array(size * 2);
  const f = STRUCTS.bdsnap_device_info.fields;
  const dv = new DataView(arr.buffer, size);
  arr.set(new TextEncoder().encode("/dev/vdb"), size + f.name);
  arr.set(new TextEncoder().encode("dev_vdb_20261122T072301.123456Z"), size + f.session_id);
  dv.setUint32(f.kind, 1, true);
  dv.setUint32(f.state, 2, true);
  dv.setUint32(f.major, 254, true);
  dv.setUint32(f.minor, 16, true);
  dv.setInt32(f.error, -28, true);
  dv.setBigUint64(f.bytes_saved, 8192n, true);
  const d = decodeDeviceInfo(arr, size);
  assert.equal(d.name, "/dev/vdb");
  assert.equal(d.sessionId, "dev_vdb_20261122T072301.123456Z");
  assert.deepEqual([d.kind, d.state, d.major, d.minor, d.error, d.bytesSaved], [
    1,
    2,
    254,
    16,
    -28,
    8192,
  ]);
  assert.equal(decodeDeviceInfo(arr, 0).name, "");
});

Deno.test("libc: open, pread, close, statvfs, geteuid", () => {
  const fd = open("/proc/self/mountinfo", O_RDONLY);
  const buf = alloc(4096);
  assert.ok(pread(fd, buf, 0) > 0);
  close(fd);
  assert.throws(() => open("/nonexistent/bdsnap", O_RDONLY), (e: unknown) => {
    assert.ok(e instanceof ErrnoError);
    assert.equal(e.code, "ENOENT");
    assert.match(e.message, /open \/nonexistent\/bdsnap: No such file or directory \(ENOENT\)/);
    return true;
  });
  const s = statvfs("/");
  assert.ok(s.size > 0 && s.available <= s.size && s.free <= s.size);
  assert.equal(geteuid(), Deno.uid());
});

Deno.test("libc: syscall returns results and errno", () => {
  // getpid is 39 on x86-64, 172 on arm64
  const nr = Deno.build.arch === "aarch64" ? 172 : 39;
  assert.equal(syscall("getpid", nr), Deno.pid);
  assert.throws(
    () => syscall("nosuch", 100_000),
    (e: unknown) => e instanceof ErrnoError && e.code === "ENOSYS",
  );
  // a buffer argument travels by address: write(2) to a pipe
  const [r, w] = pipe();
  const nrWrite = Deno.build.arch === "aarch64" ? 64 : 1;
  assert.equal(syscall("write", nrWrite, w, cstring("hi"), 2), 2);
  close(r);
  close(w);
});

Deno.test("raw syscall: the kernel's own result carries the errno (x86-64)", () => {
  const raw = rawSyscall();
  if (Deno.build.arch !== "x86_64") {
    assert.equal(raw, null, "no trampoline off x86-64: libc and errno instead");
    return;
  }
  assert.ok(raw !== null, "the trampoline could be made");
  assert.equal(raw(39, []), BigInt(Deno.pid), "getpid");
  // openat(AT_FDCWD, "/nonexistent", O_RDONLY): -ENOENT in the return value itself.
  const name = cstring("/nonexistent/bdsnap");
  assert.equal(raw(257, [-100n, addressOf(name), 0n, 0n]), -2n);
  assert.equal(name[0], 0x2f, "the name stays reachable until the call returned");
  assert.equal(rawErrno(-2n), 2);
  assert.equal(rawErrno(-4095n), 4095);
  assert.equal(rawErrno(-4096n), 0, "below -4095 is a value (an address), not an error");
  assert.equal(rawErrno(3n), 0);
  // The sixth argument travels on the stack: mmap a file's second page by its offset.
  const path = Deno.makeTempFileSync();
  const data = new Uint8Array(8192);
  data[4096] = 0x5a;
  Deno.writeFileSync(path, data);
  const fd = open(path, O_RDONLY);
  const addr = raw(9, [0n, 4096n, 1n, 1n, BigInt(fd), 4096n]);
  assert.equal(rawErrno(addr), 0);
  const page = new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(addr)!, 4096),
  );
  assert.equal(page[0], 0x5a, "the sixth argument (offset) reached the kernel");
  assert.equal(raw(11, [addr, 4096n]), 0n, "munmap");
  close(fd);
  Deno.removeSync(path);
});

Deno.test("libc: failures through every wrapper give the kernel's errno", () => {
  const [r, w] = pipe();
  close(w);
  assert.throws(() => write(w, cstring("x")), (e: unknown) => (e as ErrnoError).code === "EBADF");
  assert.throws(() => pread(r, alloc(1), 0), (e: unknown) => (e as ErrnoError).code === "ESPIPE");
  assert.throws(() => fsync(w), (e: unknown) => (e as ErrnoError).code === "EBADF");
  assert.throws(
    () => ioctl("tcgets", r, 0x5401, alloc(64)),
    (e: unknown) => (e as ErrnoError).code === "ENOTTY" && (e as ErrnoError).op === "tcgets",
  );
  assert.throws(() => mapReadOnly(w, 4096), (e: unknown) => (e as ErrnoError).code === "EBADF");
  close(r);
});

Deno.test("libc: poll on another thread sees a pipe become readable", async () => {
  const [r, w] = pipe();
  assert.deepEqual(await pollAsync([{ fd: r, events: POLLIN }], 0), [0]);
  write(w, cstring("x"));
  const rev = await pollAsync([{ fd: r, events: POLLIN }], 1000);
  assert.ok(rev !== null && (rev[0] & POLLIN) !== 0);
  close(r);
  close(w);
});

Deno.test("control: syscall numbers come from sysfs, or the module is not loaded", async () => {
  const dir = await Deno.makeTempDir();
  assert.throws(() => syscallNumbers(dir), ModuleNotLoadedError);
  await Deno.writeTextFile(`${dir}/nr_activate`, "335\n");
  await Deno.writeTextFile(`${dir}/nr_deactivate`, "336\n");
  assert.deepEqual(syscallNumbers(dir), { activate: 335, deactivate: 336 });
  await Deno.writeTextFile(`${dir}/nr_deactivate`, "-1\n");
  assert.throws(() => syscallNumbers(dir), /no usable system call numbers/);
  await Deno.remove(dir, { recursive: true });
});
