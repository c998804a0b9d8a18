/**
 * What the packaged program runs on: the pinned Deno runtime (the binary of
 * the `deno` npm package, as `npx -y deno@VERSION` leaves it) and the npm
 * packages the program imports, cached the way that runtime caches them.
 * @module
 */

import { copyTree } from "./stage.ts";

/** The Deno release the package ships: the one the README's Quick start pins. */
export const DENO_VERSION = "2.9.6";

/** `deno --version`'s release, or null if `bin` does not run. */
export async function denoVersion(bin: string): Promise<string | null> {
  try {
    const r = await new Deno.Command(bin, { args: ["--version"], stdout: "piped", stderr: "null" })
      .output();
    return r.success ? /^deno (\S+)/.exec(new TextDecoder().decode(r.stdout))?.[1] ?? null : null;
  } catch {
    return null;
  }
}

/** Where npx leaves the npm package's binary: ~/.npm/_npx/<hash>/node_modules/@deno/<platform>/deno. */
async function npxBinaries(): Promise<string[]> {
  const out: string[] = [];
  for (const home of new Set([Deno.env.get("HOME"), "/root"])) {
    if (!home) continue;
    const npx = `${home}/.npm/_npx`;
    try {
      for await (const e of Deno.readDir(npx)) {
        out.push(`${npx}/${e.name}/node_modules/@deno/linux-x64-glibc/deno`);
      }
    } catch {
      // no npx cache there
    }
  }
  return out.sort();
}

/**
 * The Deno binary to ship: `explicit` if given, else the one running this
 * script, else one npx fetched; it must be exactly {@linkcode DENO_VERSION}.
 */
export async function findDeno(explicit?: string): Promise<string> {
  const candidates = explicit ? [explicit] : [Deno.execPath(), ...await npxBinaries()];
  for (const bin of candidates) {
    if (await denoVersion(bin) === DENO_VERSION) return await Deno.realPath(bin);
  }
  throw new Error(
    `no Deno ${DENO_VERSION} binary found (tried ${candidates.join(", ")}): run ` +
      `\`npx -y deno@${DENO_VERSION} task package\`, or give --deno PATH`,
  );
}

/** An npm package in the cache. */
export interface NpmPackage {
  name: string;
  version: string;
  license: string;
  /** Its directory. */
  dir: string;
  /** Its licence files' names (LICENSE, LICENSE.md, …). */
  licenseFiles: string[];
}

async function denoRun(deno: string, args: string[], denoDir?: string) {
  const env: Record<string, string> = { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
  if (denoDir) env.DENO_DIR = denoDir;
  const r = await new Deno.Command(deno, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: r.success, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/**
 * Without the registry: copy into `dir` the packages of the entries' module
 * graph (`deno info --json`) that this machine's own Deno cache holds. The
 * graph names every optional dependency, so this may hold a few packages
 * more than a fetch would (those of other platforms that were fetched here).
 */
async function seedFromLocalCache(
  deno: string,
  config: string,
  entries: string[],
  dir: string,
): Promise<void> {
  for (const entry of entries) {
    const info = await denoRun(deno, ["info", "--json", "--config", config, entry]);
    if (!info.ok) throw new Error(`deno info ${entry} failed:\n${info.stderr}`);
    const graph = JSON.parse(info.stdout) as {
      npmPackages: Record<string, { name: string; version: string; localPath?: string }>;
    };
    for (const p of Object.values(graph.npmPackages)) {
      const have = p.localPath &&
        await Deno.stat(p.localPath).then((s) => s.isDirectory, () => false);
      if (!have) continue;
      const dest = `${dir}/npm/registry.npmjs.org/${p.name}`;
      await copyTree(p.localPath!, `${dest}/${p.version}`);
      // The package's registry metadata, where Deno kept it.
      await Deno.copyFile(`${p.localPath}/../registry.json`, `${dest}/registry.json`)
        .catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
    }
  }
}

/**
 * Cache the npm packages `entries` import (in `app`, which holds deno.json
 * and deno.lock) with the runtime `deno`, into `dest` (a DENO_DIR that will
 * hold npm/ only: the compile caches name the build machine's paths). They
 * are fetched into an empty cache, so it holds what the program needs and
 * nothing else; without the registry (no network), from this machine's
 * own Deno cache.
 */
export async function cacheNpm(
  deno: string,
  app: string,
  entries: string[],
  dest: string,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-deno-dir-" });
  const config = `${app}/deno.json`;
  const paths = entries.map((e) => `${app}/${e}`);
  try {
    const fetched = await denoRun(deno, ["cache", "--frozen", "--config", config, ...paths], dir);
    if (!fetched.ok) {
      console.error("package: the npm registry cannot be reached; using this machine's Deno cache");
      await Deno.remove(dir, { recursive: true });
      await Deno.mkdir(dir);
      await seedFromLocalCache(deno, config, paths, dir);
      const check = await denoRun(
        deno,
        ["cache", "--frozen", "--config", config, ...paths],
        dir,
      );
      if (!check.ok) {
        throw new Error(
          `deno cache failed, from the registry:\n${fetched.stderr}\n` +
            `and from this machine's Deno cache:\n${check.stderr}`,
        );
      }
    }
    await copyTree(`${dir}/npm`, `${dest}/npm`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The packages in a DENO_DIR's npm cache, by name. */
export async function npmPackages(denoDir: string): Promise<NpmPackage[]> {
  const registry = `${denoDir}/npm/registry.npmjs.org`;
  const out: NpmPackage[] = [];
  const visit = async (dir: string, name: string) => {
    for await (const v of Deno.readDir(dir)) {
      if (!v.isDirectory) continue;
      const pkgDir = `${dir}/${v.name}`;
      const json = JSON.parse(await Deno.readTextFile(`${pkgDir}/package.json`));
      const licenseFiles: string[] = [];
      for await (const f of Deno.readDir(pkgDir)) {
        if (f.isFile && /^(licen[cs]e|copying|notice)/i.test(f.name)) licenseFiles.push(f.name);
      }
      out.push({
        name,
        version: json.version,
        license: typeof json.license === "string" ? json.license : "see its package.json",
        dir: pkgDir,
        licenseFiles: licenseFiles.sort(),
      });
    }
  };
  for await (const e of Deno.readDir(registry)) {
    if (!e.isDirectory) continue;
    if (e.name.startsWith("@")) {
      for await (const s of Deno.readDir(`${registry}/${e.name}`)) {
        if (s.isDirectory) await visit(`${registry}/${e.name}/${s.name}`, `${e.name}/${s.name}`);
      }
    } else {
      await visit(`${registry}/${e.name}`, e.name);
    }
  }
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
