import assert from "node:assert/strict";
import { ioError } from "../../lib/io_error.ts";
import { RestoreError } from "../../lib/errors.ts";
import { toCliError } from "../../cli/_lib/explain.ts";

/** The error Deno throws for `fn`. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

Deno.test("io errors: named by path and what was expected, no runtime text", async () => {
  const f = await Deno.makeTempFile();
  const d = await Deno.makeTempDir();
  try {
    const cases: Array<[unknown, string, string, string]> = [
      [thrown(() => Deno.readDirSync(f)), `store ${f} is not a directory`, "invalid", "ENOTDIR"],
      [thrown(() => Deno.readFileSync(d)), `${d} is a directory, not a file`, "invalid", "EISDIR"],
      [thrown(() => Deno.readFileSync(`${d}/x`)), `${d}/x: not found`, "not-found", "ENOENT"],
      [thrown(() => Deno.mkdirSync(d)), `${d} already exists`, "invalid", "EEXIST"],
    ];
    for (const [e, message, code, errno] of cases) {
      const what = message.startsWith("store ")
        ? `store ${f}`
        : message.split(/:| is | already/)[0];
      const r = ioError(e, what);
      assert.deepEqual([r.message, r.code, r.errno], [message, code, errno]);
      assert.doesNotMatch(r.message, /os error/);
    }
    // A raw runtime error reaching the CLI is worded the same, naming its path.
    const raw = thrown(() => Deno.readDirSync(f));
    assert.equal(toCliError(raw)!.message, `${f} is not a directory`);
    const denied = toCliError(
      new Deno.errors.PermissionDenied("Permission denied: open '/root/x'"),
    )!;
    assert.deepEqual([denied.message, denied.exitCode], [
      "/root/x: permission denied (run as root)",
      3,
    ]);
    const r = new RestoreError("damaged", "x");
    assert.equal(ioError(r, "y"), r);
    assert.match(
      ioError(
        Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" }),
        "/d/blocks.dat",
      )
        .message,
      /^\/d\/blocks\.dat: input\/output error \(EIO\)$/,
    );
  } finally {
    await Deno.remove(f);
    await Deno.remove(d, { recursive: true });
  }
});
