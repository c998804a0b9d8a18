// vm: disks=2 store-size=256M timeout=900
/**
 * Every refusal gives its documented errno and changes nothing: wrong
 * password, unprivileged caller, NULL and invalid pointers, unterminated and
 * overlong names, a nonexistent device, double activate, deactivate of an
 * inactive device, a store on the device itself, activating a mounted device
 * that cannot be frozen, PROTECT_MOUNT on the wrong filesystem.
 * Through the system calls (raw, via FFI) and through the CLI's exit codes.
 */
import assert from "node:assert/strict";
import { cstring, ErrnoError, syscall } from "../../ffi/libc.ts";
import { protectMount, setIdentity } from "../../ffi/control.ts";
import { sh, shTry, testDisks } from "./_helpers.ts";
import { activate, bdsnapTry, deactivate, loadModule, PASSWORD_FILE } from "./_bdsnap.ts";

const PASSWORD = "correct horse battery staple";

async function numbers(): Promise<{ act: number; deact: number }> {
  const p = "/sys/module/bdsnap/parameters";
  return {
    act: Number((await Deno.readTextFile(`${p}/nr_activate`)).trim()),
    deact: Number((await Deno.readTextFile(`${p}/nr_deactivate`)).trim()),
  };
}

function errnoOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ErrnoError) return e.code;
    throw e;
  }
  return "OK";
}

async function activatedNames(): Promise<string[]> {
  const r = await bdsnapTry("status --json");
  assert.equal(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout);
  return (st.devices ?? []).map((d: { device: string }) => d.device);
}

Deno.test("raw syscalls: each bad input gives its errno and changes nothing", async () => {
  await loadModule();
  const { act, deact } = await numbers();
  const [dev] = testDisks();
  const pw = cstring(PASSWORD);

  assert.equal(errnoOf(() => syscall("a", act, cstring(dev), cstring("wrong password"))), "EPERM");
  assert.equal(errnoOf(() => syscall("a", act, null, pw)), "EFAULT");
  assert.equal(errnoOf(() => syscall("a", act, cstring(dev), null)), "EFAULT");
  assert.equal(errnoOf(() => syscall("a", act, 1, pw)), "EFAULT");
  assert.equal(errnoOf(() => syscall("a", act, 0xffff_8000_0000_0000n, pw)), "EFAULT");
  // A name with no NUL within PATH_MAX.
  const long = new Uint8Array(8192).fill(0x61);
  assert.equal(errnoOf(() => syscall("a", act, long, pw)), "ENAMETOOLONG");
  assert.equal(errnoOf(() => syscall("a", act, cstring("/dev/nonexistent"), pw)), "ENOENT");
  // Neither a block device nor a regular file (an image): a directory, a character device.
  assert.equal(errnoOf(() => syscall("a", act, cstring("/tmp"), pw)), "ENOTBLK");
  assert.equal(errnoOf(() => syscall("a", act, cstring("/dev/null"), pw)), "ENOTBLK");
  assert.equal(errnoOf(() => syscall("d", deact, cstring(dev), pw)), "EALREADY");
  assert.deepEqual(await activatedNames(), [], "no refusal activated anything");

  // The store lives on the store disk: activating it must be refused.
  const store = Deno.env.get("BDSNAP_STORE_DISK")!;
  assert.equal(errnoOf(() => syscall("a", act, cstring(store), pw)), "EXDEV");

  assert.equal(errnoOf(() => syscall("a", act, cstring(dev), pw)), "OK");
  assert.equal(errnoOf(() => syscall("a", act, cstring(dev), pw)), "EALREADY");
  assert.deepEqual(await activatedNames(), [dev]);
  assert.equal(errnoOf(() => syscall("d", deact, cstring(dev), cstring("nope"))), "EPERM");
  assert.deepEqual(await activatedNames(), [dev], "wrong password deactivated nothing");
  assert.equal(errnoOf(() => syscall("d", deact, cstring(dev), pw)), "OK");
  assert.deepEqual(await activatedNames(), []);
});

Deno.test("SET_IDENTITY: refused for a bad password, an inactive device, bad text or a second identity", async () => {
  await loadModule();
  const { act, deact } = await numbers();
  const [dev] = testDisks();
  const pw = cstring(PASSWORD);
  const set = (path: string, password: string, id: string) =>
    errnoOf(() => setIdentity(path, password, id));
  assert.equal(set(dev, PASSWORD, "serial:x"), "EALREADY", "not activated");
  assert.equal(errnoOf(() => syscall("a", act, cstring(dev), pw)), "OK");
  assert.equal(set(dev, "wrong password", "serial:x"), "EPERM");
  assert.equal(set(dev, PASSWORD, ""), "EINVAL");
  assert.equal(set(dev, PASSWORD, "serial:tab\there"), "EINVAL");
  assert.equal(set(dev, PASSWORD, "x".repeat(512)), "EINVAL", "no NUL within 512 bytes");
  assert.equal(set("/dev/nonexistent", PASSWORD, "serial:x"), "ENOENT");
  assert.equal(set(dev, PASSWORD, "serial:bdsnap-test"), "OK");
  assert.equal(set(dev, PASSWORD, "serial:bdsnap-test"), "OK", "the same again");
  assert.equal(set(dev, PASSWORD, "serial:other"), "EBUSY");
  // Sessions opened from now on carry it.
  await sh(`mkfs.ext4 -q -F ${dev} && mkdir -p /mnt/si && mount ${dev} /mnt/si && umount /mnt/si`);
  const dirs = (await sh(`ls -t /snapshot`)).split("\n").filter((d) => d.startsWith("dev_"));
  const meta = JSON.parse(await Deno.readTextFile(`/snapshot/${dirs[0]}/meta.json`));
  assert.equal(meta.identity, "serial:bdsnap-test");
  assert.equal(errnoOf(() => syscall("d", deact, cstring(dev), pw)), "OK");
});

Deno.test("PROTECT_MOUNT: refused for an inactive device, a bad password, another disk's or no disk's filesystem, a device in session", async () => {
  await loadModule();
  const { act, deact } = await numbers();
  const [dev, other] = testDisks();
  const pw = cstring(PASSWORD);
  const protect = (path: string, password: string, mnt: string) =>
    errnoOf(() => protectMount(path, password, mnt));
  await sh(`mkfs.ext4 -q -F ${dev} && mkfs.ext4 -q -F ${other} && mkdir -p /mnt/pa /mnt/pb`);
  await sh(`mount ${dev} /mnt/pa && mount ${other} /mnt/pb`);
  try {
    const before = await sh("ls /snapshot");
    assert.equal(protect(dev, PASSWORD, "/mnt/pa"), "EALREADY", "not activated");
    assert.equal(errnoOf(() => syscall("a", act, cstring(dev), pw)), "OK");
    assert.equal(protect(dev, "wrong password", "/mnt/pa"), "EPERM");
    assert.equal(protect(dev, PASSWORD, "/mnt/pb"), "EXDEV", "the other disk's filesystem");
    assert.equal(protect(dev, PASSWORD, "/run"), "ENOTBLK", "tmpfs");
    assert.equal(protect(dev, PASSWORD, "/nonexistent"), "ENOENT");
    assert.equal(await sh("ls /snapshot"), before, "no session from a refusal");
    // A second mount of it, made since the activation, opened a session:
    // the first mount cannot start another.
    await sh(`mkdir -p /mnt/pc && mount ${dev} /mnt/pc`);
    assert.equal(protect(dev, PASSWORD, "/mnt/pa"), "EBUSY", "in session already");
    await sh("umount /mnt/pc");
    assert.equal(errnoOf(() => syscall("d", deact, cstring(dev), pw)), "OK");
  } finally {
    await sh("umount /mnt/pa; umount /mnt/pb; true");
  }
});

Deno.test("unprivileged callers get EPERM from syscalls and exit 3 from the CLI", async () => {
  await loadModule();
  const [dev] = testDisks();
  await sh(`cp ${PASSWORD_FILE} /tmp/pw-nobody && chown nobody /tmp/pw-nobody`);
  // Test setup only: let nobody reach the Deno binary and its cache under
  // /root (the guest's overlay; the host is untouched).
  await sh("chmod o+x /root");
  const { act } = await numbers();
  const probe = `
    const { syscall, cstring, ErrnoError } = await import("${Deno.cwd()}/ffi/libc.ts");
    try { syscall("a", ${act}, cstring("${dev}"), cstring("${PASSWORD}")); console.log("OK"); }
    catch (e) { console.log(e instanceof ErrnoError ? e.code : String(e)); }`;
  await Deno.writeTextFile("/tmp/probe.ts", probe);
  const r = await shTry(
    `setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp DENO_DIR=$DENO_DIR ` +
      `"$BDSNAP_DENO" run -A /tmp/probe.ts`,
  );
  assert.equal(r.stdout.trim(), "EPERM", r.stderr);
  const cli = await shTry(
    `setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp ` +
      `bdsnap activate ${dev} --password-file /tmp/pw-nobody`,
  );
  assert.equal(cli.code, 3, cli.stdout + cli.stderr);
  assert.deepEqual(await activatedNames(), []);
});

Deno.test("CLI exit codes: wrong password 3, bad device 1, module missing 4", async () => {
  await loadModule();
  const [dev] = testDisks();
  await Deno.writeTextFile("/tmp/wrong", "not the password\n");
  const wrong = await bdsnapTry(`activate ${dev} --password-file /tmp/wrong`);
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /password|EPERM/i);
  const missing = await bdsnapTry(`activate /dev/nope --password-file ${PASSWORD_FILE}`);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ENOENT|no such/i);
  await activate(dev, "ioctl");
  const twice = await bdsnapTry(`activate ${dev} --password-file ${PASSWORD_FILE} --via ioctl`);
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /EALREADY|already/i);
  await deactivate(dev, "ioctl");
  // A mounted filesystem that cannot be frozen (vfat): refused, with what
  // to do, and nothing activated (its session could not start consistent).
  await sh(`mkfs.vfat ${dev} >/dev/null && mkdir -p /mnt/bi && mount ${dev} /mnt/bi`);
  const mounted = await bdsnapTry(`activate ${dev} --password-file ${PASSWORD_FILE} --json`);
  await sh("umount /mnt/bi");
  assert.equal(mounted.code, 1, mounted.stderr);
  assert.match(mounted.stderr, /vfat cannot be frozen, .*\/mnt\/bi .*Unmount it, activate/);
  assert.equal(JSON.parse(mounted.stdout).error.code, "invalid");
  const st = JSON.parse((await bdsnapTry("status --json")).stdout);
  assert.deepEqual(st.devices ?? [], [], "nothing activated");
  await sh("rmmod bdsnap");
  const gone = await bdsnapTry(`activate ${dev} --password-file ${PASSWORD_FILE}`);
  assert.equal(gone.code, 4);
  assert.match(gone.stderr, /bdsnap load/);
  // The store's own disk recorded for activation at boot: load says it will be refused.
  const store = Deno.env.get("BDSNAP_STORE_DISK")!;
  const config = "/run/bdsnap-etc/bdsnap.json";
  await Deno.writeTextFile(
    config,
    JSON.stringify({ format: 1, devices: [{ identity: "", path: store, kind: "block" }] }),
  );
  const load = await bdsnapTry("load");
  await Deno.remove(config);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stderr, new RegExp(`store root /snapshot is on ${store}, which .* records`));
});
