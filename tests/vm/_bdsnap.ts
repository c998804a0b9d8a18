/**
 * Driving the real `bdsnap` CLI from VM tests. Every test goes through the
 * same commands an administrator types, so the tests prove the whole path:
 * CLI → FFI → syscall/ioctl → module → store → restorer.
 * @module
 */
import assert from "node:assert/strict";
import { sh, shTry } from "./_helpers.ts";

export const PASSWORD_FILE = "/run/bdsnap-test-password";
const PASSWORD = "correct horse battery staple";

/** The CLI from the working tree, as the guest's PATH has it. */
export async function bdsnap(args: string): Promise<string> {
  return await sh(`bdsnap ${args}`, testEnv());
}

/** The CLI, not throwing: for refusal tests. */
export async function bdsnapTry(args: string) {
  return await shTry(`bdsnap ${args}`, testEnv());
}

function testEnv(): Record<string, string> {
  // The guest runs under software emulation: a cheap KDF keeps each check fast.
  return { BDSNAP_KDF_ITERATIONS: "1000", BDSNAP_CONFIG_DIR: "/run/bdsnap-etc" };
}

/** Set the password and load the module (idempotent within one boot). */
export async function loadModule(extra = ""): Promise<void> {
  await Deno.writeTextFile(PASSWORD_FILE, PASSWORD + "\n", { mode: 0o600 });
  const have = await shTry("test -e /run/bdsnap-etc/passwd.hash");
  if (have.code !== 0) await bdsnap(`setup --password-file ${PASSWORD_FILE}`);
  const loaded = await shTry("test -d /sys/module/bdsnap");
  if (loaded.code !== 0) await bdsnap(`load ${extra}`);
}

export async function unloadModule(): Promise<void> {
  await bdsnap("unload");
}

export async function activate(dev: string, via: "syscall" | "ioctl" = "syscall") {
  await bdsnap(`activate ${dev} --password-file ${PASSWORD_FILE} --via ${via}`);
}

export async function deactivate(dev: string, via: "syscall" | "ioctl" = "syscall") {
  await bdsnap(`deactivate ${dev} --password-file ${PASSWORD_FILE} --via ${via}`);
}

/** One session as `bdsnap sessions --json` reports it. */
export interface SessionInfo {
  id: string;
  device: string;
  state: string;
  fsType?: string;
  records?: number;
  bytes?: number;
  [k: string]: unknown;
}

/** Sessions of a device in the store, oldest first. */
export async function sessions(dev?: string): Promise<SessionInfo[]> {
  const out = JSON.parse(await bdsnap(`sessions ${dev ?? ""} --json`));
  const list = Array.isArray(out) ? out : out.sessions;
  assert.ok(Array.isArray(list), `unexpected sessions --json: ${JSON.stringify(out)}`);
  return list as SessionInfo[];
}

/** Restore a device (or --target) to the state before a session's mount. */
export async function restore(dev: string, sessionId: string, extra = ""): Promise<void> {
  await bdsnap(`restore ${dev} --session ${sessionId} --yes ${extra}`);
}

/** Mount, run a shell snippet with $M as the mountpoint, unmount. */
export async function withMount(
  dev: string,
  fs: string,
  body: string,
  options = "",
): Promise<void> {
  await sh(`mkdir -p /mnt/t && mount -t ${fs} ${options ? `-o ${options}` : ""} ${dev} /mnt/t`);
  try {
    await sh(`M=/mnt/t; ${body}`);
  } finally {
    await sh("umount /mnt/t");
  }
}

/**
 * A realistic write mix: creates, overwrites, deletes, O_DIRECT, mmap
 * writes, fallocate and punch-hole, fsync. Operations a filesystem does not
 * support (vfat has no punch-hole) are skipped, not failed.
 */
export const WRITE_MIX = `
set -e
for i in $(seq 1 20); do head -c $((i * 7919)) /dev/urandom > $M/f$i; done
sync
dd if=/dev/urandom of=$M/big bs=64k count=64 status=none
dd if=/dev/urandom of=$M/f3 bs=4k count=3 conv=notrunc status=none
rm -f $M/f5 $M/f7
mkdir -p $M/d/e && echo hello > $M/d/e/g
dd if=/dev/urandom of=$M/direct bs=4k count=64 oflag=direct status=none 2>/dev/null || \
  dd if=/dev/urandom of=$M/direct bs=4k count=64 status=none
python3 - "$M/mm" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 20)
m = mmap.mmap(fd, 1 << 20)
for i in range(0, 1 << 20, 4096):
    m[i:i + 8] = os.urandom(8)
m.flush()
m.close()
os.close(fd)
PY
(fallocate -l 1M $M/falloc && fallocate -p -o 4096 -l 65536 $M/falloc) 2>/dev/null || true
dd if=/dev/urandom of=$M/big bs=4k count=8 seek=100 conv=notrunc,fsync status=none
sync
`;
