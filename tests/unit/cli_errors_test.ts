import assert from "node:assert/strict";
import { explainErrno, NOT_LOADED, toCliError } from "../../cli/_lib/explain.ts";
import { CliError } from "../../cli/_lib/errors.ts";
import { ERRNO, ErrnoError } from "../../ffi/libc.ts";
import { ModuleNotLoadedError } from "../../ffi/control.ts";
import { checkParams, explainLoadError, moduleCandidates, paramArg } from "../../cli/load.ts";
import { inUseMessage } from "../../cli/unload.ts";
import { usableTarget } from "../../cli/_lib/activation.ts";

function msg(name: string, op: string, extra: Record<string, unknown> = {}) {
  const e = explainErrno(ERRNO[name], { op, path: "/dev/vdb", euid: 0, ...extra });
  return [e.message, e.exitCode];
}

Deno.test("errno to message: activate and deactivate refusals", () => {
  assert.deepEqual(msg("EPERM", "activate"), ["wrong password (EPERM)", 3]);
  assert.deepEqual(msg("EPERM", "activate", { euid: 1000 }), [
    "not root (EPERM): activate needs root",
    3,
  ]);
  assert.deepEqual(msg("EPERM", "activate", { euid: undefined }), [
    "wrong password or not root (EPERM)",
    3,
  ]);
  assert.deepEqual(msg("EACCES", "status"), ["permission denied (EACCES): status needs root", 3]);
  assert.deepEqual(msg("ENOENT", "activate"), ["no such device or file: /dev/vdb (ENOENT)", 1]);
  // ENOTBLK from activate: the target's, or the store's (a filesystem without a block device).
  assert.deepEqual(msg("ENOTBLK", "activate", { pathUsable: false }), [
    "/dev/vdb is neither a block device nor a regular file (ENOTBLK)",
    1,
  ]);
  assert.deepEqual(msg("ENOTBLK", "activate", { pathUsable: true, storeRoot: "/snapshot" }), [
    "the snapshot store (/snapshot) is on a filesystem without a block device (NFS, FUSE, " +
    "virtiofs, tmpfs), which the module refuses: put the store on a local block device (ENOTBLK)",
    1,
  ]);
  assert.match(
    msg("ENOTBLK", "activate", { storeRoot: "/snapshot" })[0] as string,
    /^\/dev\/vdb is neither a block device nor a regular file, or the snapshot store \(\/snapshot\) is on a filesystem without a block device .*\(ENOTBLK\)$/,
  );
  assert.deepEqual(
    msg("ENOTBLK", "deactivate")[0],
    msg("ENOTBLK", "activate", {
      pathUsable: false,
    })[0],
  );
  // A zoned block device: zone resets and zone appends cannot be copied on write.
  assert.deepEqual(msg("EMEDIUMTYPE", "activate", { path: "/dev/nullb0" }), [
    "/dev/nullb0 is a zoned block device, and bdsnap cannot snapshot zoned devices: zone " +
    "resets and zone appends cannot be copied on write (EMEDIUMTYPE)",
    1,
  ]);
  assert.equal(ERRNO.EMEDIUMTYPE, 124);
  assert.deepEqual(msg("EMEDIUMTYPE", "status", { path: undefined }), [
    "status failed: Wrong medium type (EMEDIUMTYPE)",
    1,
  ]);
  assert.deepEqual(msg("EALREADY", "activate"), ["/dev/vdb is already activated (EALREADY)", 1]);
  assert.deepEqual(msg("EALREADY", "deactivate"), ["/dev/vdb is not activated (EALREADY)", 1]);
  assert.deepEqual(msg("EXDEV", "activate", { storeRoot: "/snapshot" }), [
    "the snapshot store (/snapshot) lives on /dev/vdb or on a device stacked on it (a loop image " +
    "kept on it, a dm or md device over it): put the store on another device (EXDEV)",
    1,
  ]);
  assert.deepEqual(msg("ENAMETOOLONG", "activate"), [
    "path or password too long (ENAMETOOLONG)",
    1,
  ]);
  assert.match(msg("EFAULT", "activate")[0] as string, /bug in bdsnap \(EFAULT\)$/);
  assert.match(
    msg("EINVAL", "activate")[0] as string,
    /refused activate of \/dev\/vdb; `dmesg` says why \(EINVAL\)$/,
  );
  assert.match(msg("ENOTTY", "status")[0] as string, /do not match; reload the module \(ENOTTY\)$/);
  assert.deepEqual(msg("ENOSYS", "activate")[1], 4);
  assert.deepEqual(msg("EBUSY", "activate"), ["/dev/vdb is busy (EBUSY)", 1]);
  assert.deepEqual(msg("EAGAIN", "activate"), ["the module is busy; try again (EAGAIN)", 1]);
  assert.deepEqual(
    explainErrno(5, { op: "list" }).message,
    "list failed: Input/output error (EIO)",
  );
});

Deno.test("errors to CliError: module missing, errno, permission, bugs", () => {
  assert.deepEqual(
    [
      toCliError(new ModuleNotLoadedError())!.message,
      toCliError(new ModuleNotLoadedError())!.exitCode,
    ],
    [NOT_LOADED, 4],
  );
  assert.equal(NOT_LOADED, "module not loaded: run `bdsnap load`");
  const e = toCliError(new ErrnoError("open /dev/bdsnap", 13))!;
  assert.equal(e.exitCode, 3);
  assert.equal(toCliError(new Deno.errors.PermissionDenied("open /etc/x"))!.exitCode, 3);
  const c = new CliError("x", 2);
  assert.equal(toCliError(c), c);
  assert.equal(toCliError(new TypeError("bug")), null);
});

Deno.test("load errors: Secure Boot, wrong kernel, missing symbols, not root", () => {
  const ko = "/lib/modules/6.1.0/extra/bdsnap.ko";
  const k = (name: string, euid = 0) => explainLoadError(ERRNO[name], ko, "6.1.0", euid);
  assert.equal(k("EPERM", 1000).exitCode, 3);
  assert.match(k("EPERM", 1000).message, /^not root \(EPERM\)/);
  assert.match(k("EPERM").message, /refused .* \(EPERM\).*Secure Boot/);
  assert.equal(k("EKEYREJECTED").exitCode, 3);
  assert.match(k("EKEYREJECTED").message, /signature .* \(EKEYREJECTED\): Secure Boot requires/);
  assert.match(k("ENOKEY").message, /Secure Boot/);
  assert.match(
    k("ENOEXEC").message,
    /not a module for kernel 6\.1\.0 \(ENOEXEC\): rebuild .* linux-headers-6\.1\.0/,
  );
  assert.match(k("EEXIST").message, /already loaded/);
  assert.match(k("ENOENT").message, /symbols/);
  assert.match(k("EINVAL").message, /dmesg/);
  assert.match(k("ENOSYS").message, /cannot load modules/);
});

Deno.test("load: where the module is looked for, and its parameters", () => {
  assert.deepEqual(moduleCandidates("6.12.0", "/x/bdsnap.ko"), ["/x/bdsnap.ko"]);
  const c = moduleCandidates("6.12.0", undefined);
  assert.equal(c[0], "/lib/modules/6.12.0/updates/dkms/bdsnap.ko");
  assert.ok(c.at(-1)!.endsWith("/.cache/vm/build/6.12.0/bdsnap.ko"), c.at(-1)!);
  assert.deepEqual(checkParams(["nr_activate=335", "inflight_limit_mb=64", "debug"]), [
    "nr_activate=335",
    "inflight_limit_mb=64",
    "debug",
  ]);
  assert.throws(
    () => checkParams(["=1"]),
    (e: unknown) => e instanceof CliError && e.exitCode === 2,
  );
  assert.equal(paramArg("store_root", "/snapshot"), "store_root=/snapshot");
  assert.equal(paramArg("store_root", "/my store"), 'store_root="/my store"');
});

Deno.test("unload: the in-use message names the devices", () => {
  assert.equal(
    inUseMessage(["/dev/vdb", "/img/a.img"]),
    "2 devices are still active (/dev/vdb, /img/a.img): run `bdsnap deactivate DEV` first",
  );
  assert.equal(
    inUseMessage(["/dev/vdb"]),
    "1 device is still active (/dev/vdb): run `bdsnap deactivate DEV` first",
  );
  assert.match(inUseMessage([]), /^module in use: .*deactivate/);
});

Deno.test("cli: errors are one line; a stack trace only with BDSNAP_DEBUG=1", async () => {
  const { reportError } = await import("../../cli/main.ts");
  const { captureIo } = await import("../../cli/_lib/io.ts");
  const saved = Deno.env.get("BDSNAP_DEBUG");
  try {
    Deno.env.delete("BDSNAP_DEBUG");
    let r = await captureIo(() => reportError(new CliError("wrong password (EPERM)", 3)));
    assert.deepEqual([r.result, r.stderr], [3, "bdsnap: wrong password (EPERM)\n"]);
    r = await captureIo(() => reportError(new TypeError("boom")));
    assert.equal(r.result, 1);
    assert.equal(
      r.stderr,
      "bdsnap: internal error: boom\nbdsnap: (set BDSNAP_DEBUG=1 to see where)\n",
    );
    r = await captureIo(() => reportError(new CliError("", 4)));
    assert.deepEqual([r.result, r.stderr], [4, ""]);
    Deno.env.set("BDSNAP_DEBUG", "1");
    r = await captureIo(() => reportError(new TypeError("boom")));
    assert.match(r.stderr, /^bdsnap: internal error: boom\nTypeError: boom\n\s+at /);
  } finally {
    if (saved === undefined) Deno.env.delete("BDSNAP_DEBUG");
    else Deno.env.set("BDSNAP_DEBUG", saved);
  }
});

Deno.test("activate as root: EACCES, ELOOP and ENOTDIR name the store root rule", () => {
  const m = (name: string) =>
    explainErrno(ERRNO[name], { op: "activate", path: "/dev/vdb", euid: 0, storeRoot: "/snap" })
      .message;
  assert.match(
    m("EACCES"),
    /store root \(\/snap\) is not safe: it must be a directory \(not a symlink\) owned by root and not writable by group or others/,
  );
  assert.match(m("ELOOP"), /store root \(\/snap\) is a symbolic link; give its target/);
  assert.match(m("ENOTDIR"), /store root \(\/snap\) is not a directory/);
});

Deno.test("activate tells the target's ENOTBLK from the store's by looking at the target", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/disk.img`, new Uint8Array(512));
  assert.equal(usableTarget(`${dir}/disk.img`), true);
  assert.equal(usableTarget(dir), false);
  assert.equal(usableTarget(`${dir}/none`), undefined);
  await Deno.remove(dir, { recursive: true });
});
