import assert from "node:assert/strict";
import { run } from "./_restore_cli.ts";
import { fixture, type FixtureMount, script, SIZE } from "./_restore_fixture.ts";
import { flipBit } from "../_store_writer.ts";
import type { RestoreDeps } from "../../cli/_lib/restore_common.ts";
import { listSessions } from "../../lib/store.ts";

Deno.test("cli restore: --session --yes --json restores and reports", async () => {
  const f = await fixture();
  const r = await run(
    [
      "--store",
      f.root,
      "--json",
      "restore",
      f.image,
      "--session",
      f.ids[1],
      "--yes",
      "--read-back",
    ],
    script,
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.action, "restore");
  assert.ok(j.checked_bytes >= j.bytes, "every pre-image of the chain was checksummed");
  assert.equal(j.dry_run, false);
  assert.equal(j.device, f.image);
  assert.equal(j.target, f.image);
  assert.equal(j.session, f.ids[1]);
  assert.deepEqual(j.sessions.map((s: { id: string }) => s.id), f.ids.slice(1));
  assert.equal(j.written_bytes, j.bytes);
  assert.equal(j.verified_bytes, j.bytes);
  assert.equal(j.forced, false);
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[1]);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli restore: human output, --target, and --dry-run", async () => {
  const f = await fixture();
  const copy = `${f.dir}/copy.img`;
  await Deno.writeFile(copy, f.h.final);
  let r = await run(
    ["--store", f.root, "restore", "--session", f.ids[0], "--target", copy, "--dry-run"],
    script,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /target: +.*copy\.img/);
  assert.match(r.stdout, /dry run: all checks passed/);
  assert.deepEqual(await Deno.readFile(copy), f.h.final);
  r = await run(
    ["--store", f.root, "restore", "--session", f.ids[0], "--target", copy, "-y"],
    script,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^restored .*copy\.img to its state before the mount of/m);
  assert.match(r.stdout, /^verified: checksums of 3 session\(s\)/m);
  assert.deepEqual(await Deno.readFile(copy), f.h.before[0]);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli restore: refusals write nothing and give the documented exit codes", async () => {
  const f = await fixture();
  const base = ["--store", f.root, "restore"];
  const cases: Array<[string[], RestoreDeps, number, RegExp]> = [
    [[...base, "--session", f.ids[0]], script, 2, /without --yes: there is no terminal/],
    [[...base, f.image, "--yes"], script, 2, /no --session given/],
    [
      [...base, "--session", f.ids[0], "-y"],
      { ...script, isActivated: () => true },
      1,
      /deactivate it first/,
    ],
    [[...base, "--session", "nope", "-y"], script, 1, /no session nope/],
    [[...base, "/dev/other", "--session", f.ids[0], "-y"], script, 1, /not of \/dev\/other/],
    [
      ["--store", `${f.dir}/none`, "restore", "--session", "x", "-y"],
      script,
      1,
      /give the store root/,
    ],
  ];
  for (const [args, deps, code, re] of cases) {
    const r = await run(args, deps);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  }
  // An open (live) later session refuses the restore.
  const g = await fixture(["closed", "open"]);
  const open = await run(["--store", g.root, "restore", "--session", g.ids[0], "-y"], {
    ...script,
    liveSessions: () => new Set([g.ids[1]]),
  });
  assert.equal(open.code, 1);
  assert.match(open.stderr, /still open: unmount the device first/);
  // Damage: the file and offset are named, and nothing is written.
  await flipBit(`${f.root}/${f.ids[2]}/blocks.dat`, 10);
  const bad = await run([...base, "--session", f.ids[0], "-y"], script);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /is damaged: blocks\.dat at offset 0: data_crc mismatch/);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  await Deno.remove(f.dir, { recursive: true });
  await Deno.remove(g.dir, { recursive: true });
});

Deno.test("cli restore: later sessions become superseded; earlier states stay reachable", async () => {
  const f = await fixture();
  const base = ["--store", f.root, "--json"];
  const first = await run([...base, "restore", f.image, "--session", f.ids[1], "--yes"], script);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout).superseded, [f.ids[2]]);
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[1]);

  const marks = (await listSessions(f.root)).map((s) => s.superseded?.restoredTo ?? null);
  assert.deepEqual(marks, [null, null, f.ids[1]]);

  // The undone session's pre-mount state belongs to the discarded history.
  const again = await run([...base, "restore", f.image, "--session", f.ids[2], "--yes"], script);
  assert.equal(again.code, 1);
  assert.match(again.stderr, new RegExp(`undone by the restore to ${f.ids[1]}`));
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[1], "nothing written");

  // Earlier states are still exact, through the marked session's pre-images.
  const older = await run([...base, "restore", f.image, "--session", f.ids[0], "--yes"], script);
  assert.equal(older.code, 0, older.stderr);
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[0]);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli export: writes the pre-mount image, leaves the device alone", async () => {
  const f = await fixture();
  const out = `${f.dir}/out.img`;
  const r = await run(
    ["--store", f.root, "--json", "export", f.image, "--session", f.ids[2], "--output", out],
    script,
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.action, "export");
  assert.equal(j.copied_bytes, SIZE);
  assert.deepEqual(await Deno.readFile(out), f.h.before[2]);
  assert.deepEqual(await Deno.readFile(f.image), f.h.final);
  const usage = await run(["--store", f.root, "export", f.image, "--output", out], script);
  assert.equal(usage.code, 2);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli verify: ok, incomplete and damaged with file and offset", async () => {
  const f = await fixture(["closed", "closed", "open"]);
  let r = await run(["--store", f.root, "verify"], script);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^SESSION +STATE +RESULT +RECORDS +DATA$/m);
  assert.match(r.stdout, new RegExp(`^${f.ids[0]} +closed +ok `, "m"));
  assert.match(r.stdout, new RegExp(`^${f.ids[2]} +interrupted +incomplete `, "m"));
  const strict = await run(["--store", f.root, "verify", "--strict"], script);
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, new RegExp(`1 damaged or incomplete session\\(s\\): ${f.ids[2]}`));
  assert.equal((await run(["--store", f.root, "verify", "--strict", f.ids[0]], script)).code, 0);

  const s1 = `${f.root}/${f.ids[1]}/blocks.dat`;
  const dat = await Deno.readFile(s1);
  await flipBit(s1, dat.length - 1);
  r = await run(["--store", f.root, "--json", "verify"], script);
  assert.equal(r.code, 1);
  const j = JSON.parse(r.stdout);
  const v = j.sessions.find((s: { id: string }) => s.id === f.ids[1]);
  assert.equal(v.result, "damaged");
  assert.equal(v.problems[0].file, "blocks.dat");
  assert.equal(typeof v.problems[0].offset, "number");
  assert.match(v.problems[0].message, /data_crc mismatch/);
  assert.equal(r.stderr, "");

  r = await run(["--store", f.root, "verify", f.ids[0]], script);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim().split("\n").length, 2);
  r = await run(["--store", f.root, "verify", f.ids[1]], script);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /blocks\.dat at offset \d+: data_crc mismatch/);
  assert.match(r.stderr, /1 damaged session/);
  r = await run(["--store", f.root, "verify", "nope"], script);
  assert.equal(r.code, 1);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli restore: a gap needs --accept-gap, and -q never hides it", async () => {
  // The middle session is interrupted (meta.json open, not live), recorded by
  // an older module (durability "flush").
  const crashed: FixtureMount = { state: "open", durability: "flush" };
  const f = await fixture(["closed", crashed, "closed"]);
  const base = ["--store", f.root, "-q", "restore", f.image, "--yes"];
  const refused = await run([...base, "--session", f.ids[0]], script);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    new RegExp(
      `^bdsnap: the restore to the state before ${f.ids[0]} would not be exact: ` +
        `session ${f.ids[1]} was interrupted .*pass --accept-gap; ${f.ids[2]} is the oldest ` +
        `session after it that restores exactly\\n$`,
    ),
  );
  assert.deepEqual(await Deno.readFile(f.image), f.h.final, "nothing written");
  // The way forward it names works.
  const next = await run([...base, "--session", f.ids[2]], script);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(await Deno.readFile(f.image), f.h.before[2]);
  // Accepted: restored, and said loudly even with -q.
  const g = await fixture(["closed", crashed, "closed"]);
  const accepted = await run(
    ["--store", g.root, "-q", "restore", g.image, "--yes", "--session", g.ids[0], "--accept-gap"],
    script,
  );
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(
    accepted.stderr,
    /^bdsnap: WARNING: not exact \(--accept-gap\): session .* interrupted/,
  );
  assert.equal(accepted.stdout, "");
  // (The simulated crash saved every pre-image, so here the result happens to be exact.)
  assert.deepEqual(await Deno.readFile(g.image), g.h.before[0]);
  await Deno.remove(f.dir, { recursive: true });
  await Deno.remove(g.dir, { recursive: true });
});

Deno.test("cli restore: the advice for an incomplete session leads to a restore that works", async () => {
  const f = await fixture();
  // The middle mount never got going: its blocks.dat is missing.
  await Deno.remove(`${f.root}/${f.ids[1]}/blocks.dat`);
  const base = ["--store", f.root, "--json", "restore", f.image, "--yes"];
  const first = await run([...base, "--session", f.ids[0]], script);
  assert.equal(first.code, 1);
  assert.match(
    first.stderr,
    /is incomplete .*exact only if that mount changed nothing.*--accept-gap/,
  );
  assert.equal(first.stdout, "");
  // Its own pre-mount state: refused, naming where the same state is found.
  const own = await run([...base, "--session", f.ids[1]], script);
  assert.equal(own.code, 1);
  assert.match(own.stderr, /state before the next session's mount/);
  // Removed by hand, as the old advice said: the gap is named and accepted the same way.
  await Deno.remove(`${f.root}/${f.ids[1]}`, { recursive: true });
  const gap = await run([...base, "--session", f.ids[0]], script);
  assert.equal(gap.code, 1);
  assert.match(
    gap.stderr,
    /session\(s\) missing between .*\(seq 1\) and .*\(seq 3\).*--accept-gap/,
  );
  const ok = await run([...base, "--session", f.ids[0], "--accept-gap"], script);
  assert.equal(ok.code, 0, ok.stderr);
  const j = JSON.parse(ok.stdout);
  assert.equal(j.exact, false);
  assert.deepEqual(j.gaps.map((x: { code: string }) => x.code), ["missing"]);
  await Deno.remove(f.dir, { recursive: true });
});

Deno.test("cli restore: --session takes latest, a chain number or a unique prefix", async () => {
  const f = await fixture();
  const base = ["--store", f.root, "--json", "restore", f.image, "--yes", "--dry-run"];
  const pick = async (spec: string) => {
    const r = await run([...base, "--session", spec], script);
    return r.code === 0 ? JSON.parse(r.stdout).session : r.stderr;
  };
  assert.equal(await pick("latest"), f.ids[2]);
  assert.equal(await pick("2"), f.ids[1]);
  assert.equal(await pick(f.ids[0].slice(0, -8)), f.ids[0]);
  assert.equal(await pick(`${f.root}/${f.ids[1]}/`), f.ids[1]);
  assert.match(await pick("4"), /--session 4: the device has sessions 1 to 3/);
  assert.match(await pick(f.ids[0].slice(0, 12)), /ambiguous: 3 sessions start with it/);
  assert.match(await pick("nope"), /no session nope in the store/);
  await Deno.remove(f.dir, { recursive: true });
});
