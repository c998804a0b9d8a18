/**
 * The prune schedule we ship (scripts/systemd/bdsnap-prune.{service,timer,cron})
 * runs commands this CLI accepts: each command line, pointed at a scratch
 * store and made a dry run, parses and succeeds.
 */
import assert from "node:assert/strict";
import { run } from "./_cli.ts";

const DIR = new URL("../../scripts/systemd/", import.meta.url).pathname;

/** The bdsnap arguments of a command line (everything after the program). */
function bdsnapArgs(line: string): string[] {
  const words = line.trim().split(/\s+/);
  const at = words.findIndex((w) => w === "bdsnap" || w.endsWith("/bdsnap"));
  assert.ok(at >= 0, `no bdsnap in '${line}'`);
  return words.slice(at + 1);
}

async function dryRun(args: string[]): Promise<void> {
  const store = await Deno.makeTempDir();
  try {
    await Deno.chmod(store, 0o700);
    const r = await run(["--store", store, ...args, "--dry-run"]);
    assert.equal(r.code, 0, `bdsnap ${args.join(" ")}: ${r.stderr}`);
  } finally {
    await Deno.remove(store, { recursive: true });
  }
}

Deno.test("prune schedule: the service's ExecStart is a valid prune", async () => {
  const unit = await Deno.readTextFile(`${DIR}/bdsnap-prune.service`);
  const exec = unit.split("\n").filter((l) => l.startsWith("ExecStart="));
  assert.equal(exec.length, 1);
  assert.match(unit, /^Type=oneshot$/m);
  const args = bdsnapArgs(exec[0].slice("ExecStart=".length));
  assert.equal(args[0], "prune");
  await dryRun(args);
});

Deno.test("prune schedule: the timer starts the service daily and catches up after downtime", async () => {
  const timer = await Deno.readTextFile(`${DIR}/bdsnap-prune.timer`);
  assert.match(timer, /^OnCalendar=\S+$/m);
  assert.match(timer, /^Persistent=true$/m);
  assert.match(timer, /^WantedBy=timers\.target$/m);
  // With no Unit=, a timer starts the service of its own name.
  assert.doesNotMatch(timer, /^Unit=/m);
});

Deno.test("prune schedule: the cron example runs as root and is a valid prune", async () => {
  const lines = (await Deno.readTextFile(`${DIR}/bdsnap-prune.cron`)).split("\n")
    .filter((l) => l.trim() && !l.startsWith("#") && !/^[A-Z_]+=/.test(l));
  assert.equal(lines.length, 1);
  const fields = lines[0].trim().split(/\s+/);
  assert.equal(fields[5], "root", "an /etc/cron.d line names its user");
  const args = bdsnapArgs(lines[0]);
  assert.ok(args.includes("prune"));
  await dryRun(args);
});
