/**
 * The README's "Install on a server" commands, as the install test runs
 * them: read from README.md at test time, so that what an admin is told to
 * type is what the test types.
 *
 * The section's first `sh` block is the packaged install: the commands
 * before its comment that sends the files to the server run on the build
 * machine, the rest on the server. Its second block is the path without
 * DKMS (`make -C kmod`), run on the server in a clone.
 * @module
 */

/** The commands of the section, comments and blank lines left out. */
export interface InstallCommands {
  /** On the build machine, in a clone: makes dist/. */
  build: string[];
  /** On the server, as root, in the directory that holds dist/. */
  server: string[];
  /** On the server without DKMS, in a clone. */
  manual: string[];
}

const HEADING = "## Install on a server";

function commands(lines: string[]): string[] {
  return lines.filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
}

/** Parse the section out of the README's text; throws when it is not there as expected. */
export function installCommands(readme: string): InstallCommands {
  const start = readme.split("\n").findIndex((l) => l.trim() === HEADING);
  if (start < 0) throw new Error(`README.md has no '${HEADING}' section`);
  const rest = readme.split("\n").slice(start + 1);
  const end = rest.findIndex((l) => /^## /.test(l));
  const section = end < 0 ? rest : rest.slice(0, end);
  const blocks: string[][] = [];
  let block: string[] | null = null;
  for (const line of section) {
    if (block === null && /^```(sh|bash|console)?\s*$/.test(line) && line !== "```") {
      block = [];
    } else if (block !== null && /^```\s*$/.test(line)) {
      blocks.push(block);
      block = null;
    } else if (block !== null) block.push(line);
  }
  if (blocks.length < 2) {
    throw new Error(`'${HEADING}' has ${blocks.length} sh blocks; expected 2 (packages, no DKMS)`);
  }
  const [packaged, manual] = blocks;
  const handOver = packaged.findIndex((l) => /^\s*#.*\bserver\b/i.test(l));
  if (handOver < 0) {
    throw new Error(`'${HEADING}': no comment in the first block that hands over to the server`);
  }
  const out = {
    build: commands(packaged.slice(0, handOver)),
    server: commands(packaged.slice(handOver + 1)),
    manual: commands(manual),
  };
  if (out.build.length === 0 || out.server.length === 0 || out.manual.length === 0) {
    throw new Error(`'${HEADING}': a block without commands: ${JSON.stringify(out)}`);
  }
  return out;
}
