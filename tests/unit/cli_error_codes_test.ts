import assert from "node:assert/strict";
import { CliError, codeForExit, fromRestoreError } from "../../cli/_lib/errors.ts";
import { explainErrno, toCliError } from "../../cli/_lib/explain.ts";
import { ERRNO, ErrnoError } from "../../ffi/libc.ts";
import { ModuleNotLoadedError } from "../../ffi/control.ts";
import { RestoreError } from "../../lib/errors.ts";
import { errnoOf, ioError } from "../../lib/io_error.ts";

const codeOf = (e: unknown) => {
  const c = toCliError(e)!;
  return [c.code, c.errno, c.exitCode];
};

Deno.test("error codes: from the exit code when nothing better is known", () => {
  assert.deepEqual(
    [1, 2, 3, 4].map(codeForExit),
    ["error", "usage", "permission", "module-missing"],
  );
  const e = new CliError("x", 2);
  assert.deepEqual([e.code, e.errno, e.problems], ["usage", null, []]);
  assert.equal(new CliError("x", 1, { code: "cancelled" }).code, "cancelled");
});

Deno.test("error codes: a RestoreError keeps its code, errno and problems", () => {
  const problems = [{ session: "s", file: "blocks.map", offset: 64, message: "bad crc" }];
  const r = new RestoreError("damaged", "s is damaged", problems);
  const c = fromRestoreError(r, "s is damaged; s2 restores exactly");
  assert.deepEqual([c.code, c.exitCode, c.problems, c.message], [
    "damaged",
    1,
    problems,
    "s is damaged; s2 restores exactly",
  ]);
  assert.equal(fromRestoreError(new RestoreError("permission", "x")).exitCode, 3);
  // as a cause, too (the planner's refusals, reworded)
  const w = new CliError("reworded", 1, { cause: r });
  assert.deepEqual([w.code, w.problems.length, w.cause], ["damaged", 1, r]);
  assert.deepEqual(codeOf(r), ["damaged", null, 1]);
});

Deno.test("error codes: errno refusals carry the errno name and a code", () => {
  const c = (name: string, op = "activate") => {
    const e = explainErrno(ERRNO[name], { op, path: "/dev/vdb", euid: 0 });
    return [e.code, e.errno];
  };
  assert.deepEqual(c("EPERM"), ["permission", "EPERM"]);
  // As root, activate's EACCES is the module refusing an unsafe store root.
  assert.deepEqual(c("EACCES"), ["invalid", "EACCES"]);
  assert.deepEqual(c("EACCES", "deactivate"), ["permission", "EACCES"]);
  assert.deepEqual(c("ELOOP"), ["invalid", "ELOOP"]);
  assert.deepEqual(c("ENOTDIR"), ["invalid", "ENOTDIR"]);
  assert.deepEqual(c("ENOENT"), ["not-found", "ENOENT"]);
  assert.deepEqual(c("EALREADY"), ["activated", "EALREADY"]);
  assert.deepEqual(c("EALREADY", "deactivate"), ["not-activated", "EALREADY"]);
  assert.deepEqual(c("EINVAL"), ["refused", "EINVAL"]);
  assert.deepEqual(c("EMEDIUMTYPE"), ["invalid", "EMEDIUMTYPE"]);
  assert.deepEqual(c("EBUSY"), ["busy", "EBUSY"]);
  assert.deepEqual(c("ENOSYS"), ["module-missing", "ENOSYS"]);
  assert.deepEqual(c("EIO"), ["io", "EIO"]);
  assert.deepEqual(codeOf(new ErrnoError("open /dev/bdsnap", 13)), ["permission", "EACCES", 3]);
  assert.deepEqual(codeOf(new ModuleNotLoadedError()), ["module-missing", null, 4]);
});

Deno.test("error codes: runtime errors by class, never by text", () => {
  // The text says "not found"; the class says permission: the class wins.
  const denied = new Deno.errors.PermissionDenied("not found: open '/x'");
  assert.deepEqual(codeOf(denied), ["permission", null, 3]);
  assert.equal(ioError(new Deno.errors.NotFound("permission denied"), "f").code, "not-found");
  assert.equal(errnoOf(Object.assign(new Error("x"), { code: "ENOTDIR" })), "ENOTDIR");
  assert.equal(errnoOf(Object.assign(new Error("x"), { code: "ERR_X_Y" })), null);
  assert.equal(errnoOf("nope"), null);
  assert.equal(toCliError(new TypeError("bug")), null);
  assert.equal(toCliError(new Deno.errors.BrokenPipe("x")), null); // stdout's: handled by main
});
