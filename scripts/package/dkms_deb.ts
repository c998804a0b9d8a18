/**
 * The `bdsnap-dkms` package's tree: the kernel module's sources in
 * /usr/src/bdsnap-<version>/ (where `dkms add -m bdsnap -v <version>` looks),
 * dkms.conf among them, and the scripts that add, build, install and remove
 * it with DKMS.
 * @module
 */

import { copyFile, fill, writeFile } from "./stage.ts";
import type { DebMeta } from "./deb.ts";

const TEMPLATES = new URL("./bdsnap-dkms/", import.meta.url);

/** PACKAGE_VERSION in a dkms.conf. */
export function dkmsVersion(conf: string): string | null {
  return /^PACKAGE_VERSION="([^"]+)"$/m.exec(conf)?.[1] ?? null;
}

/**
 * The module's source files, relative to kmod/: what git tracks or would
 * track (.gitignore keeps build products out: objects, the probe results).
 */
export async function kmodSources(repo: string): Promise<string[]> {
  const r = await new Deno.Command("git", {
    args: ["ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "kmod"],
    cwd: repo,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`git ls-files kmod failed: ${new TextDecoder().decode(r.stderr)}`);
  }
  const files = new TextDecoder().decode(r.stdout).split("\0").filter((f) => f !== "");
  // A file deleted from the work tree but not yet from the index is not a source.
  const present = [];
  for (const f of files) {
    if (await Deno.stat(`${repo}/${f}`).then((s) => s.isFile, () => false)) present.push(f);
  }
  return present.map((f) => f.slice("kmod/".length)).sort();
}

/** Stage bdsnap-dkms for `version` in `stage`; what goes into DEBIAN/. */
export async function stageDkms(
  repo: string,
  stage: string,
  version: string,
  maintainer: string,
): Promise<DebMeta> {
  const conf = await Deno.readTextFile(`${repo}/kmod/dkms.conf`);
  if (dkmsVersion(conf) !== version) {
    throw new Error(
      `kmod/dkms.conf has PACKAGE_VERSION="${dkmsVersion(conf)}", the CLI is ${version}: ` +
        "make them equal",
    );
  }
  const src = `${stage}/usr/src/bdsnap-${version}`;
  const files = await kmodSources(repo);
  for (const f of ["dkms.conf", "Makefile", "Kbuild"]) {
    if (!files.includes(f)) throw new Error(`kmod/${f} is not among the module's sources`);
  }
  for (const f of files) await copyFile(`${repo}/kmod/${f}`, `${src}/${f}`);
  const vars = { VERSION: version, MAINTAINER: maintainer };
  const read = (name: string) => Deno.readTextFile(new URL(name, TEMPLATES));
  await writeFile(
    `${stage}/usr/share/doc/bdsnap-dkms/copyright`,
    fill(await read("copyright"), vars),
  );
  return {
    control: fill(await read("control"), { ...vars, INSTALLED_SIZE: "@INSTALLED_SIZE@" }),
    scripts: {
      postinst: fill(await read("postinst"), vars),
      prerm: fill(await read("prerm"), vars),
    },
  };
}
