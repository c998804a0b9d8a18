/**
 * Building a package's file tree: copies with the modes a package should
 * ship (directories 0755, files 0644, executables 0755, whatever the build
 * machine's umask or the npm tarballs said) and template filling.
 * @module
 */

/** A file's mode in the package: 0755 if anyone may execute it, else 0644. */
function packagedMode(mode: number | null): number {
  return (mode ?? 0) & 0o111 ? 0o755 : 0o644;
}

/** Create `dir` and its missing parents, 0755 (or `mode` for `dir` itself). */
export async function mkdirs(dir: string, mode = 0o755): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.chmod(dir, mode);
}

/** Write `data` to `dest` (parents created) with `mode`. */
export async function writeFile(
  dest: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
  if (typeof data === "string") await Deno.writeTextFile(dest, data);
  else await Deno.writeFile(dest, data);
  await Deno.chmod(dest, mode);
}

/** Copy one file, with `mode` or its packaged mode. */
export async function copyFile(src: string, dest: string, mode?: number): Promise<void> {
  await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(src, dest);
  await Deno.chmod(dest, mode ?? packagedMode((await Deno.stat(src)).mode));
}

/**
 * Copy the tree `src` to `dest`, keeping the files `keep` accepts (given the
 * path relative to `src`). Symbolic links are refused: a package of ours
 * has no reason to hold one that points outside it.
 */
export async function copyTree(
  src: string,
  dest: string,
  keep: (rel: string) => boolean = () => true,
  rel = "",
): Promise<void> {
  await mkdirs(dest);
  const entries = [];
  for await (const e of Deno.readDir(src)) entries.push(e);
  entries.sort((a, b) => a.name < b.name ? -1 : 1);
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (!keep(r)) continue;
    if (e.isSymlink) throw new Error(`${src}/${e.name}: a symbolic link, not packaged`);
    if (e.isDirectory) await copyTree(`${src}/${e.name}`, `${dest}/${e.name}`, keep, r);
    else await copyFile(`${src}/${e.name}`, `${dest}/${e.name}`);
  }
}

/**
 * `template` with every `@NAME@` replaced by `vars.NAME`. A placeholder
 * without a value is an error, so a template cannot ship half filled.
 */
export function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/@([A-Z_]+)@/g, (whole, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`template placeholder ${whole} has no value`);
    return v;
  });
}
