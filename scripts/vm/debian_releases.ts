/**
 * Kernels of Debian releases other than the host's (trixie, trixie-backports,
 * sid) come through a private apt state directory in the machine's download
 * cache: its own sources, lists and package cache, the host's keyring and
 * dpkg status. Nothing is added to the host's own sources.
 *
 * A look-up runs apt-cache with `APT_CONFIG` pointing there. The lists are
 * refreshed once per run (a few seconds, by pdiffs), so a kernel published
 * today is tested today; offline, the older lists are used with a warning.
 * @module
 */
import { AptError, listsAge, updateFailures } from "./apt.ts";
import { log, run } from "./_process.ts";
import { downloadCacheDir } from "./paths.ts";

/** The private apt state holding the releases our extra kernel series come from. */
const SOURCES = `Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates trixie-backports sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

const UPDATED_ENV = "BDSNAP_PRIVATE_APT_UPDATED";

function stateDir(): string {
  return `${downloadCacheDir()}/apt/debian-next`;
}

/** Write the private configuration (idempotent); returns its APT_CONFIG path. */
async function configure(): Promise<string> {
  const dir = stateDir();
  for (const d of ["lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  await Deno.writeTextFile(`${dir}/sources.list.d/debian.sources`, SOURCES);
  const conf = `${dir}/apt.conf`;
  await Deno.writeTextFile(
    conf,
    [
      `Dir::State "${dir}/";`,
      `Dir::State::Lists "${dir}/lists/";`,
      `Dir::State::status "/var/lib/dpkg/status";`,
      `Dir::Cache "${dir}/cache/";`,
      `Dir::Etc::SourceList "/dev/null";`,
      `Dir::Etc::SourceParts "${dir}/sources.list.d/";`,
      `Dir::Etc::Preferences "/dev/null";`,
      `Dir::Etc::PreferencesParts "${dir}/preferences.d/";`,
      `Acquire::Languages "none";`,
      `APT::Architecture "amd64";`,
      "",
    ].join("\n"),
  );
  return conf;
}

/** The private state's environment for apt-get and apt-cache, its lists updated once per run. */
export async function privateAptEnv(): Promise<Record<string, string>> {
  const env = { APT_CONFIG: await configure(), DEBIAN_FRONTEND: "noninteractive" };
  if (Deno.env.get(UPDATED_ENV) !== "1") {
    log("apt-get update (trixie, trixie-backports, sid: private apt state)");
    const r = await run("apt-get", ["update"], { env });
    Deno.env.set(UPDATED_ENV, "1");
    const failed = updateFailures(r.stdout + "\n" + r.stderr);
    if (r.code !== 0 || failed.length > 0) {
      const why = (failed.length > 0 ? failed : [(r.stderr || r.stdout).trim()]).join("\n");
      if ((await listsAge(`${stateDir()}/lists`)) === Infinity) {
        throw new AptError(`apt-get update of trixie and sid failed (exit ${r.code}):\n${why}`);
      }
      log(`apt-get update of trixie and sid failed; going on with older lists:\n${why}`);
    }
  }
  return env;
}
