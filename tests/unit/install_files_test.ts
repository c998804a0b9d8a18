/**
 * The files that install bdsnap agree with the program: kmod/dkms.conf has
 * the CLI's version (DKMS keys the module's tree by it, and the package puts
 * the sources in /usr/src/bdsnap-<version>/), rebuilds on new kernels, and
 * builds through kmod/Makefile (the compile probes first).
 */
import assert from "node:assert/strict";
import { VERSION } from "../../cli/main.ts";

const KMOD = new URL("../../kmod/", import.meta.url);

/** The NAME="value" assignments of a dkms.conf (a shell fragment). */
function assignments(conf: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of conf.matchAll(/^([A-Z_]+(?:\[\d+\])?)="([^"]*)"$/gm)) out.set(m[1], m[2]);
  return out;
}

Deno.test("dkms.conf: the CLI's version, AUTOINSTALL, the Makefile with DKMS's kernel tree", async () => {
  const conf = assignments(await Deno.readTextFile(new URL("dkms.conf", KMOD)));
  assert.equal(conf.get("PACKAGE_NAME"), "bdsnap");
  assert.equal(conf.get("PACKAGE_VERSION"), VERSION);
  assert.equal(conf.get("BUILT_MODULE_NAME[0]"), "bdsnap");
  assert.equal(conf.get("AUTOINSTALL"), "yes");
  assert.match(conf.get("MAKE[0]")!, /^make KDIR=\$\{kernel_source_dir\}$/);
  assert.match(conf.get("DEST_MODULE_LOCATION[0]")!, /^\/updates/);
});

Deno.test("kmod/Makefile: install and uninstall go to updates/ and run depmod", async () => {
  const mk = await Deno.readTextFile(new URL("Makefile", KMOD));
  assert.match(mk, /^install: modules$/m);
  assert.match(mk, /^uninstall:$/m);
  assert.match(mk, /^INSTALL_MOD_DIR \?= updates$/m);
  assert.match(mk, /^INSTALL_MOD_PATH \?= \$\(DESTDIR\)$/m);
  assert.match(mk, /modules_install$/m);
});
