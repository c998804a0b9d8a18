/**
 * `bdsnap load` on an installed system: it finds the module where DKMS,
 * `make -C kmod install` or a distribution put it (modules.dep first, as
 * modprobe), warns about a store root that does not exist yet, and its
 * Secure Boot refusals say how to sign. Nothing here loads a module.
 */
import assert from "node:assert/strict";
import {
  explainLoadError,
  findModule,
  isCompressed,
  moduleCandidates,
  modulesDepEntry,
  storeRootProblem,
  storeRootWarning,
} from "../../cli/load.ts";
import { CliError } from "../../cli/_lib/errors.ts";
import { ERRNO } from "../../ffi/libc.ts";
import { run } from "./_cli.ts";

const R = "6.1.0-57-amd64";

/** A /lib/modules lookalike holding `files` (paths under <root>/<R>/) and a modules.dep. */
async function modulesTree(files: string[], dep: string | null): Promise<string> {
  const root = await Deno.makeTempDir();
  for (const f of files) {
    const p = `${root}/${R}/${f}`;
    await Deno.mkdir(p.slice(0, p.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(p, new Uint8Array([0x7f, 0x45, 0x4c, 0x46]));
  }
  if (dep !== null) {
    await Deno.mkdir(`${root}/${R}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${R}/modules.dep`, dep);
  }
  return root;
}

Deno.test("load: modules.dep names the module modprobe would load", async () => {
  const root = await modulesTree(
    [],
    [
      "kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz",
      "kernel/lib/crc16.ko.xz:",
      "updates/dkms/bdsnap.ko.xz:",
      "",
    ].join("\n"),
  );
  try {
    assert.equal(modulesDepEntry(R, root), `${root}/${R}/updates/dkms/bdsnap.ko.xz`);
    assert.equal(modulesDepEntry("9.9.9", root), null, "no modules.dep");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  const none = await modulesTree([], "kernel/lib/crc16.ko:\nkernel/x/notbdsnap.ko:\n");
  try {
    assert.equal(modulesDepEntry(R, none), null);
  } finally {
    await Deno.remove(none, { recursive: true });
  }
});

Deno.test("load: the order is BDSNAP_MODULE, modules.dep, updates/dkms, updates, extra, the checkout", async () => {
  assert.deepEqual(moduleCandidates(R, "/x/bdsnap.ko"), ["/x/bdsnap.ko"]);
  const root = await modulesTree([], "extra/bdsnap.ko:\n");
  try {
    const c = moduleCandidates(R, undefined, root);
    const dir = `${root}/${R}`;
    assert.equal(c[0], `${dir}/extra/bdsnap.ko`, "modules.dep first");
    assert.equal(c[1], `${dir}/updates/dkms/bdsnap.ko`);
    assert.ok(c.includes(`${dir}/updates/dkms/bdsnap.ko.xz`));
    assert.ok(c.indexOf(`${dir}/updates/bdsnap.ko.zst`) < c.indexOf(`${dir}/extra/bdsnap.ko.gz`));
    assert.equal(c.filter((p) => p === `${dir}/extra/bdsnap.ko`).length, 1, "no duplicates");
    assert.ok(c.at(-1)!.endsWith(`/.cache/vm/build/${R}/bdsnap.ko`), "a source checkout");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("load: finds a DKMS module before a make-install one, without modules.dep", async () => {
  const root = await modulesTree(["updates/bdsnap.ko", "updates/dkms/bdsnap.ko.xz"], null);
  try {
    const saved = Deno.env.get("BDSNAP_MODULE");
    Deno.env.delete("BDSNAP_MODULE");
    try {
      assert.equal(findModule(R, undefined, root), `${root}/${R}/updates/dkms/bdsnap.ko.xz`);
      await Deno.remove(`${root}/${R}/updates/dkms`, { recursive: true });
      assert.equal(findModule(R, undefined, root), `${root}/${R}/updates/bdsnap.ko`);
      await Deno.remove(`${root}/${R}/updates`, { recursive: true });
      assert.throws(() => findModule("0.0.0-none", undefined, root), (e: unknown) => {
        assert.ok(e instanceof CliError);
        assert.match(e.message, /not found \(looked in .*modules\.dep/);
        assert.match(e.message, /updates\/dkms,updates,extra/);
        assert.match(e.message, /linux-headers-0\.0\.0-none.*bdsnap-dkms/);
        return true;
      });
    } finally {
      if (saved !== undefined) Deno.env.set("BDSNAP_MODULE", saved);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("load: compressed modules are handed to the kernel to decompress", () => {
  assert.ok(isCompressed("/lib/modules/r/updates/dkms/bdsnap.ko.xz"));
  assert.ok(isCompressed("bdsnap.ko.zst"));
  assert.ok(!isCompressed("bdsnap.ko"));
  const e = explainLoadError(ERRNO.EOPNOTSUPP, "/m/bdsnap.ko.xz", R, 0);
  assert.match(e.message, /cannot decompress .*xz -dk.*--module/);
});

Deno.test("load: Secure Boot refusals point to the signing steps", () => {
  for (const name of ["EKEYREJECTED", "ENOKEY", "EKEYEXPIRED"]) {
    const e = explainLoadError(ERRNO[name], "/m/bdsnap.ko", R, 0);
    assert.equal(e.exitCode, 3);
    assert.match(e.message, /mokutil --import \/var\/lib\/dkms\/mok\.pub/);
    assert.match(e.message, /SECURE BOOT in `man 8 bdsnap`, or docs\/INSTALL\.md/);
  }
  const perm = explainLoadError(ERRNO.EPERM, "/m/bdsnap.ko", R, 0).message;
  assert.match(perm, /\(EPERM\)/);
  if (!perm.includes("modules_disabled")) assert.match(perm, /mokutil --import/);
  assert.match(
    explainLoadError(ERRNO.ENOEXEC, "/m/bdsnap.ko", R, 0).message,
    new RegExp(`dkms autoinstall -k ${R}`),
  );
});

Deno.test("store root: a missing one is a warning, and says what the first activation does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(storeRootProblem(`${dir}/snap`), null);
    assert.equal(
      storeRootWarning(`${dir}/snap`),
      `the store root ${dir}/snap does not exist: it will be created 0700 at the first activation`,
    );
    assert.match(storeRootWarning(`${dir}/no/snap`)!, /nor does .*\/no: activations will fail/);
    await Deno.mkdir(`${dir}/snap`);
    assert.equal(storeRootWarning(`${dir}/snap`), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("store root: a symbolic link on the way is refused, as the module refuses it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/real/snap`, { recursive: true });
    await Deno.symlink(`${dir}/real`, `${dir}/link`);
    assert.match(
      storeRootProblem(`${dir}/link/snap`)!,
      new RegExp(`symbolic link in its path.*give the path without links, ${dir}/real/snap$`),
    );
    assert.match(storeRootProblem(`${dir}/link/missing`)!, /symbolic link in its path/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load --help: says where the module is looked for", async () => {
  const r = await run(["load", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /modules\.dep/);
  assert.match(r.stdout, /updates\/dkms\//);
  assert.match(r.stdout, /created 0700 at the first activation/);
});
