/**
 * How to start this program again, as a child: the compiled executable
 * itself, or the Deno runtime running the same entry point with the same
 * configuration (the package's launcher and a checkout both run from source).
 * @module
 */

/** The argv that runs `bdsnap ARGS…` the way this process runs. */
export function selfCommand(args: readonly string[]): string[] {
  const exe = Deno.execPath();
  const runtime = /^deno(\.exe)?$/.test(exe.replace(/^.*\//, ""));
  if (!runtime) return [exe, ...args];
  const main = Deno.mainModule;
  const config = new URL("../deno.json", main);
  const flags = ["run", "-A", "--quiet", "--config", config.pathname];
  // The package's launcher runs offline from its own cache (scripts/package/bdsnap/launcher.sh).
  if (Deno.env.get("BDSNAP_CACHED_ONLY") === "1") flags.push("--cached-only", "--frozen");
  return [exe, ...flags, main, ...args];
}
