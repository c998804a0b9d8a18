/**
 * `bdsnap load` refuses, before loading anything, a store root the module
 * would refuse (cli/load.ts storeRootProblem; kmod/store_fs.c makes the
 * same checks at load and at every activation).
 */
import assert from "node:assert/strict";
import { storeRootProblem } from "../../cli/load.ts";

Deno.test("store root: missing is fine, the first activation creates it", () => {
  assert.equal(storeRootProblem("/nonexistent/bdsnap-store-root"), null);
});

Deno.test("store root: a symlink, a file, a group- or world-writable directory are refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/real`, { mode: 0o700 });
    await Deno.chmod(`${dir}/real`, 0o700);
    await Deno.symlink(`${dir}/real`, `${dir}/link`);
    await Deno.writeTextFile(`${dir}/file`, "");
    await Deno.mkdir(`${dir}/open`);
    await Deno.chmod(`${dir}/open`, 0o777);
    await Deno.mkdir(`${dir}/group`);
    await Deno.chmod(`${dir}/group`, 0o770);

    assert.match(storeRootProblem(`${dir}/link`)!, /link is a symbolic link/);
    assert.match(storeRootProblem(`${dir}/file`)!, /file is not a directory/);
    const uid = Deno.uid();
    if (uid === 0) {
      assert.match(storeRootProblem(`${dir}/open`)!, /writable by group or others \(mode 777\)/);
      assert.match(storeRootProblem(`${dir}/group`)!, /writable by group or others \(mode 770\)/);
      assert.equal(storeRootProblem(`${dir}/real`), null);
    } else {
      assert.match(storeRootProblem(`${dir}/real`)!, new RegExp(`owned by uid ${uid}, not root`));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
