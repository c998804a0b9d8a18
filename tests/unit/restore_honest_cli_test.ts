/**
 * `bdsnap restore` and `bdsnap sessions` on sessions of each guarantee: an
 * inexact restore (a failed session, a crash without write-ahead) is refused
 * in every scripted mode and changes nothing; a write-ahead crash restores
 * exactly with no flag; the guarantee is shown.
 */

import assert from "node:assert/strict";
import { run } from "./_restore_cli.ts";
import { run as runCli } from "./_cli.ts";
import { fixture, type FixtureMount, script } from "./_restore_fixture.ts";

const ENOSPC = 28;
/** Failed (ENOSPC) after 2 of its 8 writes; meta.json's rewrite failed: it says open. */
const FAILED: FixtureMount = { state: "open", headerFailed: { errno: ENOSPC }, savedRecords: 2 };
/** Cut by a crash, recorded by an older module ("flush"), its last pre-images lost. */
const FLUSH_CRASH: FixtureMount = { state: "open", durability: "flush", savedRecords: 3 };

Deno.test("cli restore: an inexact chain is refused with -q, --yes and --json, and nothing is written", async () => {
  for (
    const [middle, code, why] of [
      [FAILED, "failed", /failed \(No space left on device \(ENOSPC\)\), after 2 durable record/],
      [FLUSH_CRASH, "interrupted", /interrupted .*its durability was "flush"/],
    ] as const
  ) {
    const f = await fixture(["closed", middle, "closed"]);
    const base = ["--store", f.root];
    const args = ["restore", f.image, "--yes", "--session", f.ids[0]];
    for (const mode of [["-q"], [], ["--json"], ["-q", "--json"]]) {
      // The whole program (its JSON error included), as a script runs it.
      const r = await runCli([...base, ...mode, ...args], { BDSNAP_AUDIT: "0" });
      assert.equal(r.code, 1, `${mode}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /will then hold a mix of its pre-mount blocks .*pass --accept-gap/);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      if (mode.includes("--json")) {
        const e = JSON.parse(r.stdout).error;
        assert.equal(e.code, code);
        assert.equal(e.problems[0].session, f.ids[1]);
      } else {
        assert.equal(r.stdout, "");
      }
      assert.deepEqual(await Deno.readFile(f.image), f.h.final, `${mode}: nothing written`);
    }
    // --force overrides the identity check only, not the guarantee.
    const forced = await run([...base, "-q", ...args, "--force"], script);
    assert.equal(forced.code, 1);
    assert.deepEqual(await Deno.readFile(f.image), f.h.final);
    // The session itself: the same refusal.
    const own = await run([...base, "-q", "restore", f.image, "-y", "--session", f.ids[1]], script);
    assert.equal(own.code, 1);
    assert.match(own.stderr, why);
    // After it: exact.
    const next = await run(
      [...base, "-q", "restore", f.image, "-y", "--session", f.ids[2]],
      script,
    );
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.stderr, "");
    assert.deepEqual(await Deno.readFile(f.image), f.h.before[2]);
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("cli restore: --accept-gap on a failed session says what the device will hold", async () => {
  const f = await fixture(["closed", FAILED, "closed"]);
  const r = await run(
    [
      "--store",
      f.root,
      "-q",
      "--json",
      "restore",
      f.image,
      "-y",
      "--session",
      f.ids[0],
      "--accept-gap",
    ],
    script,
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.match(lines[0], /^bdsnap: WARNING: not exact \(--accept-gap\): session .* failed/);
  assert.match(
    lines[1],
    /^bdsnap: WARNING: the device will then hold a mix of its pre-mount blocks and blocks written after that mount/,
  );
  const j = JSON.parse(r.stdout);
  assert.equal(j.exact, false);
  assert.deepEqual(j.gaps.map((g: { code: string }) => g.code), ["failed"]);
  assert.deepEqual(j.sessions.map((s: { state: string }) => s.state), [
    "closed",
    "failed",
    "closed",
  ]);
  // Really a mix: the writes after the failure were never saved.
  const now = await Deno.readFile(f.image);
  assert.notDeepEqual(now, f.h.before[0]);
  assert.notDeepEqual(now, f.h.final);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli restore: a write-ahead session cut by a crash restores exactly, with no flag", async () => {
  const f = await fixture(["closed", { state: "open" }, "closed"]);
  // A torn record at the end of its map: a write that never reached the device.
  const map = `${f.root}/${f.ids[1]}/blocks.map`;
  const b = await Deno.readFile(map);
  await Deno.writeFile(map, new Uint8Array([...b, ...b.subarray(64, 90)]));
  const r = await run(
    ["--store", f.root, "--json", "restore", f.image, "--yes", "--session", f.ids[0]],
    script,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const j = JSON.parse(r.stdout);
  assert.equal(j.exact, true);
  assert.deepEqual(
    j.sessions.map((s: { state: string; durability: string }) => [
      s.state,
      s.durability,
    ]),
    [["closed", "write-ahead"], ["interrupted", "write-ahead"], ["closed", "write-ahead"]],
  );
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[0]);

  // The human plan says which guarantee it rests on.
  await Deno.writeFile(f.image, f.h.final);
  const human = await run(
    ["--store", f.root, "restore", f.image, "--yes", "--dry-run", "--session", f.ids[0]],
    script,
  );
  assert.equal(human.code, 0, human.stderr);
  assert.match(
    human.stdout,
    /^result: +exact \(1 session\(s\) cut by a crash, but write-ahead: complete up to their last record\)$/m,
  );
  assert.match(human.stdout, new RegExp(`^  ${f.ids[1]} .* interrupted, write-ahead `, "m"));
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli sessions: durability and how a restore to each would go", async () => {
  const f = await fixture(["closed", FAILED, "closed", FLUSH_CRASH]);
  const r = await runCli(["--store", f.root, "--json", "sessions"]);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout).sessions.map((
    s: { state: string; durability: string; restore: string; exact: boolean; error: string },
  ) => [s.state, s.durability, s.restore, s.exact, s.error]);
  assert.deepEqual(rows, [
    ["closed", "write-ahead", "inexact", false, null],
    ["failed", "write-ahead", "inexact", false, "No space left on device (ENOSPC)"],
    ["closed", "write-ahead", "inexact", false, null],
    ["interrupted", "flush", "inexact", false, null],
  ]);
  const table = (await runCli(["--store", f.root, "sessions"])).stdout.trimEnd().split("\n");
  assert.match(table[2], /write-ahead +inexact +failed \(No space left on device \(ENOSPC\)\)$/);
  assert.match(table[4], /flush +inexact +interrupted$/);
  await Deno.remove(f.dir, { recursive: true });
});
