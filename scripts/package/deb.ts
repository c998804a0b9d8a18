/**
 * A .deb from a staged tree, the way dpkg-buildpackage would leave it but
 * without debhelper: DEBIAN/control (Installed-Size computed here), the
 * maintainer scripts, DEBIAN/md5sums, then `dpkg-deb --build` with every
 * file owned by root (--root-owner-group, so no fakeroot is needed).
 * @module
 */

import { writeFile } from "./stage.ts";

/** Every regular file under `dir`, as paths relative to it, sorted. */
export async function filesUnder(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(rel ? `${dir}/${rel}` : dir)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await filesUnder(dir, r));
    else out.push(r);
  }
  return out.sort();
}

/** Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded up, 1 per directory. */
async function installedSize(stage: string, rel = ""): Promise<number> {
  let kib = 0;
  for await (const e of Deno.readDir(rel ? `${stage}/${rel}` : stage)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (r === "DEBIAN") continue;
    if (e.isDirectory) kib += 1 + await installedSize(stage, r);
    else kib += Math.ceil((await Deno.lstat(`${stage}/${r}`)).size / 1024);
  }
  return kib;
}

async function md5sums(stage: string): Promise<string> {
  const files = (await filesUnder(stage)).filter((f) => !f.startsWith("DEBIAN/"));
  if (files.length === 0) return "";
  const r = await new Deno.Command("md5sum", {
    args: ["--", ...files],
    cwd: stage,
    stdout: "piped",
  })
    .output();
  if (!r.success) throw new Error("md5sum failed");
  return new TextDecoder().decode(r.stdout);
}

/** What goes into DEBIAN/. */
export interface DebMeta {
  /** The control file, with `@INSTALLED_SIZE@` still in it. */
  control: string;
  /** Maintainer scripts by name (postinst, prerm, postrm, …). */
  scripts: Record<string, string>;
}

/** Build `out` (a .deb) from the tree `stage`. */
export async function buildDeb(stage: string, meta: DebMeta, out: string): Promise<void> {
  const size = String(await installedSize(stage));
  await writeFile(`${stage}/DEBIAN/control`, meta.control.replace("@INSTALLED_SIZE@", size));
  for (const [name, text] of Object.entries(meta.scripts)) {
    await writeFile(`${stage}/DEBIAN/${name}`, text, 0o755);
  }
  await writeFile(`${stage}/DEBIAN/md5sums`, await md5sums(stage));
  const r = await new Deno.Command("dpkg-deb", {
    args: ["--root-owner-group", "-Zxz", "--build", stage, out],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`dpkg-deb --build ${out} failed:\n${new TextDecoder().decode(r.stderr)}`);
  }
}
