/**
 * Helpers for tests that run inside the VM (as root, on a Debian kernel, with
 * $BDSNAP_TEST_DISKS and a store disk at /snapshot). Never call these on
 * the host: they load modules and write to block devices.
 * @module
 */
import assert from "node:assert/strict";

/** Result of a shell command. */
export interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The tier this VM runs (scripts/test.ts): "core" keeps each file's essential
 * tests, "full" runs all. Full when unset, as in a hand-started `deno task vm`.
 */
export function tier(): "core" | "full" {
  return Deno.env.get("BDSNAP_TIER") === "core" ? "core" : "full";
}

/** Options for a test that runs in the full tier only: `Deno.test(name, fullTierOnly, fn)`. */
export const fullTierOnly: { ignore: boolean } = { ignore: tier() !== "full" };

/**
 * What a shell step is, for the run's time profile: the costs that add up
 * under emulation (each bdsnap is a Deno start-up, hashing and mkfs are CPU).
 */
export function stepKind(cmd: string): string {
  for (const [kind, re] of PROFILE_KINDS) if (re.test(cmd)) return kind;
  return "other";
}
const PROFILE_KINDS: [string, RegExp][] = [
  ["bdsnap", /(^|[\s;&|(])bdsnap\s/],
  ["sha256", /sha256sum/],
  ["mkfs", /mkfs\./],
  ["fio", /(^|\s)fio\s/],
  ["fill", /openssl enc|\/dev\/urandom/],
  ["mount", /(^|\s)u?mount\s/],
];

/** Add a step's time to the profile the host prints (scripts/vm/qemu.ts reads it). */
async function profile(cmd: string, seconds: number): Promise<void> {
  const file = Deno.env.get("BDSNAP_PROFILE");
  if (!file) return;
  const line = JSON.stringify({ kind: stepKind(cmd), seconds }) + "\n";
  await Deno.writeTextFile(file, line, { append: true }).catch(() => {});
}

/** Run a bash command; returns its result without throwing. */
export async function shTry(cmd: string, env: Record<string, string> = {}): Promise<ShResult> {
  const started = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-c", cmd],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  await profile(cmd, (performance.now() - started) / 1000);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Run a bash command and return its stdout; throws with its output on failure. */
export async function sh(cmd: string, env: Record<string, string> = {}): Promise<string> {
  const r = await shTry(cmd, env);
  if (r.code !== 0) {
    throw new Error(`'${cmd}' failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

/** The VM's test disks, e.g. ["/dev/vda", "/dev/vdb"]. */
export function testDisks(): string[] {
  const disks = (Deno.env.get("BDSNAP_TEST_DISKS") ?? "").split(" ").filter(Boolean);
  assert.ok(disks.length > 0, "no test disks: run inside `deno task vm`");
  return disks;
}

/** Path of the module built for the running kernel. */
export function modulePath(): string {
  const p = Deno.env.get("BDSNAP_MODULE");
  assert.ok(p, "BDSNAP_MODULE is not set: run inside `deno task vm`");
  return p;
}

/** Whether the bdsnap module is loaded. */
export async function moduleLoaded(): Promise<boolean> {
  try {
    await Deno.stat("/sys/module/bdsnap");
    return true;
  } catch {
    return false;
  }
}

/** sha256 of a whole block device or file. */
export async function sha256(path: string): Promise<string> {
  return (await sh(`sha256sum ${path}`)).split(" ")[0];
}

/** Fill a device with deterministic pseudo-random content (so restores are meaningful). */
export async function fillRandom(dev: string, seed = 1): Promise<void> {
  await sh(
    `openssl enc -aes-128-ctr -nosalt -pass pass:bdsnap${seed} -pbkdf2 -in /dev/zero 2>/dev/null ` +
      `| dd of=${dev} bs=1M iflag=fullblock count=$(( $(blockdev --getsize64 ${dev}) / 1048576 )) ` +
      `oflag=direct status=none || true`,
  );
}

/** The kernel log since the test's start, for assertions about messages. */
export async function dmesg(): Promise<string> {
  return await sh("dmesg");
}
