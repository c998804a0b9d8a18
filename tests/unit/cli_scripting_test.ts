import assert from "node:assert/strict";
import { MAIN, run } from "./_cli.ts";
import { reportError, wantsJson } from "../../cli/main.ts";
import { CliError, EXIT_PIPE } from "../../cli/_lib/errors.ts";
import { captureIo, StdoutClosedError } from "../../cli/_lib/io.ts";
import { RestoreError } from "../../lib/errors.ts";

Deno.test("--json: a failure is one error object on stdout, and one line on stderr", async () => {
  const r = await run(["sessions", "--json", "--store", "/nonexistent/store"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^bdsnap: store \/nonexistent\/store: not found: give the store root/);
  assert.ok(r.stdout.endsWith("}\n") && r.stdout.split("\n").length === 2, r.stdout);
  assert.deepEqual(JSON.parse(r.stdout), {
    error: {
      code: "not-found",
      errno: "ENOENT",
      message: "store /nonexistent/store: not found: give the store root with --store DIR",
      problems: [],
    },
  });
  // without --json, stdout stays empty
  const plain = await run(["sessions", "--store", "/nonexistent/store"]);
  assert.deepEqual([plain.code, plain.stdout], [1, ""]);
});

Deno.test("--json: usage errors too, and a file where the store should be", async () => {
  const u = await run(["--json", "nosuch"]);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /^bdsnap: unknown command 'nosuch'/);
  assert.deepEqual(JSON.parse(u.stdout).error, {
    code: "usage",
    errno: null,
    message: "unknown command 'nosuch'",
    problems: [],
  });
  const f = await Deno.makeTempFile();
  try {
    const r = await run(["sessions", "--json", "--store", f]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `bdsnap: store ${f} is not a directory: give the store root with --store DIR\n`,
    );
    assert.doesNotMatch(r.stderr, /os error|readdir/);
    assert.deepEqual([JSON.parse(r.stdout).error.code, JSON.parse(r.stdout).error.errno], [
      "invalid",
      "ENOTDIR",
    ]);
  } finally {
    await Deno.remove(f);
  }
});

Deno.test("--json: problems, internal errors, and messages reported already", async () => {
  const problems = [{ session: "s1", file: "blocks.map", message: "bad" }];
  let r = await captureIo(() =>
    reportError(new RestoreError("damaged", "s1 is damaged", problems), true)
  );
  assert.equal(r.result, 1);
  assert.deepEqual(JSON.parse(r.stdout).error.problems, [
    { session: "s1", file: "blocks.map", offset: null, message: "bad" },
  ]);
  r = await captureIo(() => reportError(new TypeError("boom"), true));
  assert.deepEqual([r.result, JSON.parse(r.stdout).error.code], [1, "internal"]);
  // "" = the command printed its own report (verify --json): no second object
  r = await captureIo(() => reportError(new CliError("", 1), true));
  assert.deepEqual([r.result, r.stdout, r.stderr], [1, "", ""]);
  assert.deepEqual(
    [wantsJson(["show", "--json"]), wantsJson(["export", "--", "--json"]), wantsJson([])],
    [true, false, false],
  );
});

Deno.test("a closed stdout ends the command quietly with 141", async () => {
  const r = await captureIo(() => reportError(new StdoutClosedError(), true));
  assert.deepEqual([r.result, r.stdout, r.stderr], [EXIT_PIPE, "", ""]);
  // A child whose stdout pipe is closed before it writes: EPIPE on its first write.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "completions", "bash"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await child.stdout.cancel();
  const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
  assert.deepEqual([status.code, stderr], [141, ""]);
});
