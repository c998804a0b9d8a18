/**
 * The `bdsnap` package's tree: the program (by default its sources, the
 * pinned Deno runtime, its cached npm packages and a launcher; with
 * `compile`, one `deno compile` executable), the systemd units, shell
 * completions and bdsnap(8) made by running the staged program itself,
 * the documentation, and /etc/bdsnap.
 * @module
 */

import { bdsnapManPage } from "../man.ts";
import { copyFile, copyTree, fill, mkdirs, writeFile } from "./stage.ts";
import type { DebMeta } from "./deb.ts";
import { cacheNpm, DENO_VERSION, type NpmPackage, npmPackages } from "./runtime.ts";

/** Where things go in the package. */
export const PATHS = {
  launcher: "/usr/sbin/bdsnap",
  lib: "/usr/lib/bdsnap",
  units: "/usr/lib/systemd/system",
  bash: "/usr/share/bash-completion/completions/bdsnap",
  zsh: "/usr/share/zsh/vendor-completions/_bdsnap",
  fish: "/usr/share/fish/vendor_completions.d/bdsnap.fish",
  man: "/usr/share/man/man8/bdsnap.8.gz",
  doc: "/usr/share/doc/bdsnap",
  config: "/etc/bdsnap",
} as const;

/** The program's files, relative to the repository: what `deno run cli/main.ts` reads. */
const APP = ["cli", "lib", "ffi", "mod.ts", "deno.json", "deno.lock"];
/** What the program imports, directly or in a worker: the npm cache holds these modules' needs. */
const ENTRIES = ["cli/main.ts", "lib/crc_worker.ts"];
/**
 * Units enabled on first installation: bdsnap-start does nothing until a
 * persistent activation is configured (ConditionPathExists). The others
 * wait for the admin: the watcher is optional, the prune timer deletes.
 */
const ENABLED = ["bdsnap-start.service"];
/** The documents shipped in /usr/share/doc/bdsnap. */
const DOCS = ["README.md", "docs/INSTALL.md", "docs/CLI.md"];

/** How to build the bdsnap package. */
export interface CliDebOptions {
  repo: string;
  stage: string;
  version: string;
  maintainer: string;
  /** The Deno binary of {@linkcode DENO_VERSION}. */
  deno: string;
  /** Build one executable with `deno compile` (needs DENORT_BIN offline) instead of the launcher. */
  compile: boolean;
}

const TEMPLATES = new URL("./bdsnap/", import.meta.url);

function template(name: string): Promise<string> {
  return Deno.readTextFile(new URL(name, TEMPLATES));
}

/** Why a unit would not run the packaged program (an Exec line naming another bdsnap), or null. */
export function unitProblem(text: string): string | null {
  for (const l of text.split("\n")) {
    if (!/^Exec[A-Za-z]*=/.test(l)) continue;
    // The command and any `sh -c '…'` inside it; systemd's prefixes (-@:+!) dropped.
    const words = l.slice(l.indexOf("=") + 1).split(/[\s'";|&]+/).map((w) =>
      w.replace(/^[-@:+!]+/, "")
    );
    for (const w of words) {
      if ((w === "bdsnap" || w.endsWith("/bdsnap")) && w !== PATHS.launcher) {
        return `${l}: runs ${w}, not ${PATHS.launcher}`;
      }
    }
  }
  return null;
}

/** The systemd units in scripts/systemd, by name. */
export async function unitNames(repo: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${repo}/scripts/systemd`)) {
    if (e.isFile && /\.(service|timer)$/.test(e.name)) names.push(e.name);
  }
  return names.sort();
}

async function run(cmd: string, args: string[], env: Record<string, string>): Promise<string> {
  const home = await Deno.makeTempDir({ prefix: "bdsnap-home-" });
  try {
    // No inherited environment: the staged program must work on its own.
    const r = await new Deno.Command(cmd, {
      args,
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", HOME: home, ...env },
      cwd: home,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${dec.decode(r.stderr)}`);
    return dec.decode(r.stdout);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/**
 * Run the staged program as the launcher would, with a scratch DENO_DIR
 * that links the staged npm packages (the staged tree stays as packaged).
 */
function stagedRunner(o: CliDebOptions): (args: string[]) => Promise<string> {
  if (o.compile) return (args) => run(`${o.stage}${PATHS.launcher}`, args, {});
  const lib = `${o.stage}${PATHS.lib}`;
  return async (args) => {
    const denoDir = await Deno.makeTempDir({ prefix: "bdsnap-deno-dir-" });
    try {
      await Deno.symlink(`${lib}/deno-dir/npm`, `${denoDir}/npm`);
      return await run(`${lib}/deno`, [
        "run",
        "-A",
        "--quiet",
        "--cached-only",
        "--frozen",
        "--config",
        `${lib}/app/deno.json`,
        `${lib}/app/cli/main.ts`,
        ...args,
      ], { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", DENO_NO_PACKAGE_JSON: "1" });
    } finally {
      await Deno.remove(denoDir, { recursive: true });
    }
  };
}

/** The program as sources, runtime, npm cache and launcher. */
async function stageLauncher(o: CliDebOptions): Promise<void> {
  const lib = `${o.stage}${PATHS.lib}`;
  for (const p of APP) {
    const src = `${o.repo}/${p}`;
    if ((await Deno.stat(src)).isDirectory) {
      await copyTree(src, `${lib}/app/${p}`, (rel) => !/(^|\/)\.|_test\.ts$/.test(rel));
    } else {
      await copyFile(src, `${lib}/app/${p}`);
    }
  }
  await copyFile(o.deno, `${lib}/deno`, 0o755);
  await cacheNpm(o.deno, `${lib}/app`, ENTRIES, `${lib}/deno-dir`);
  await writeFile(`${o.stage}${PATHS.launcher}`, await template("launcher.sh"), 0o755);
}

/** The program as one executable (`deno compile`, as `deno task compile` builds it). */
async function stageCompiled(o: CliDebOptions): Promise<void> {
  if (!Deno.env.get("DENORT_BIN")) {
    console.error(
      `package: warning: DENORT_BIN is not set, so deno compile downloads denort ${DENO_VERSION}`,
    );
  }
  const out = `${o.stage}${PATHS.launcher}`;
  await mkdirs(out.slice(0, out.lastIndexOf("/")));
  const r = await new Deno.Command(o.deno, {
    args: ["compile", "-A", "--include", "lib/crc_worker.ts", "--output", out, "cli/main.ts"],
    cwd: o.repo,
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`deno compile failed:\n${new TextDecoder().decode(r.stderr)}`);
  await Deno.chmod(out, 0o755);
}

/** Licence texts of Deno and of each npm package, in /usr/share/doc/bdsnap/licenses/. */
async function stageLicenses(o: CliDebOptions, pkgs: NpmPackage[]): Promise<void> {
  const dest = `${o.stage}${PATHS.doc}/licenses`;
  for (const p of pkgs) {
    for (const f of p.licenseFiles) {
      await copyFile(`${p.dir}/${f}`, `${dest}/${p.name}/${p.version}/${f}`, 0o644);
    }
  }
  // npx leaves the binary in node_modules/@deno/<platform>/, the licence in node_modules/deno/.
  const dir = o.deno.slice(0, o.deno.lastIndexOf("/"));
  const candidates = [`${dir}/LICENSE`, `${dir}/../../deno/LICENSE`];
  for (const c of candidates) {
    const text = await Deno.readTextFile(c).catch(() => null);
    if (text !== null) return await writeFile(`${dest}/deno/${DENO_VERSION}/LICENSE`, text);
  }
  throw new Error(
    `no licence file beside the Deno binary (looked at ${candidates.join(", ")}): the package ` +
      `ships Deno with its licence, which the npm package has; run \`npx -y deno@${DENO_VERSION} ` +
      `task package\` as the README does`,
  );
}

/** Stage the licence texts of what the program carries; its copyright file. */
async function copyright(o: CliDebOptions): Promise<string> {
  let pkgs: NpmPackage[];
  if (o.compile) {
    // The executable embeds them: cache them once more to read their licences.
    const dir = await Deno.makeTempDir({ prefix: "bdsnap-npm-" });
    try {
      await cacheNpm(o.deno, o.repo, ENTRIES, dir);
      pkgs = await npmPackages(dir);
      await stageLicenses(o, pkgs);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } else {
    pkgs = await npmPackages(`${o.stage}${PATHS.lib}/deno-dir`);
    await stageLicenses(o, pkgs);
  }
  const lines = [` deno ${DENO_VERSION}: MIT (the runtime)`];
  for (const p of pkgs) lines.push(` ${p.name} ${p.version}: ${p.license}`);
  return fill(await template("copyright"), {
    APP_PATH: o.compile ? "" : `, ${PATHS.lib}/app`,
    BUNDLED: lines.join("\n"),
  });
}

async function gzip(data: string): Promise<Uint8Array> {
  const child = new Deno.Command("gzip", { args: ["-9n"], stdin: "piped", stdout: "piped" })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(data));
  await w.close();
  const r = await child.output();
  if (!r.success) throw new Error("gzip failed");
  return r.stdout;
}

/** Stage the bdsnap package in `o.stage`; what goes into DEBIAN/. */
export async function stageCli(o: CliDebOptions): Promise<DebMeta> {
  if (o.compile) await stageCompiled(o);
  else await stageLauncher(o);

  const bdsnap = stagedRunner(o);
  const version = (await bdsnap(["--version"])).trim();
  if (version !== o.version) throw new Error(`staged bdsnap --version says ${version}`);
  for (const shell of ["bash", "zsh", "fish"] as const) {
    await writeFile(`${o.stage}${PATHS[shell]}`, await bdsnap(["completions", shell]));
  }
  await writeFile(`${o.stage}${PATHS.man}`, await gzip(await bdsnapManPage()));

  const units = await unitNames(o.repo);
  for (const u of units) {
    const text = await Deno.readTextFile(`${o.repo}/scripts/systemd/${u}`);
    const problem = unitProblem(text);
    if (problem) throw new Error(`scripts/systemd/${u}: ${problem}`);
    await writeFile(`${o.stage}${PATHS.units}/${u}`, text);
  }
  const doc = `${o.stage}${PATHS.doc}`;
  for (const d of DOCS) await copyFile(`${o.repo}/${d}`, `${doc}/${d.replace(/^docs\//, "")}`);
  await copyFile(
    `${o.repo}/scripts/systemd/bdsnap-prune.cron`,
    `${doc}/examples/bdsnap-prune.cron`,
  );
  await writeFile(`${doc}/copyright`, await copyright(o));
  await mkdirs(`${o.stage}${PATHS.config}`, 0o700);

  const vars = {
    VERSION: o.version,
    MAINTAINER: o.maintainer,
    UNITS: units.join(" "),
    ENABLE: units.filter((u) => ENABLED.includes(u)).join(" "),
    FORM: o.compile
      ? "the command is one executable, built with deno compile."
      : `the command is its sources, run by a Deno ${DENO_VERSION} runtime of its own.`,
  };
  const control = fill(await template("control"), { ...vars, INSTALLED_SIZE: "@INSTALLED_SIZE@" });
  const scripts: Record<string, string> = {};
  for (const s of ["postinst", "prerm", "postrm"]) scripts[s] = fill(await template(s), vars);
  return { control, scripts };
}
