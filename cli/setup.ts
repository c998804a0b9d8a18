/**
 * `bdsnap setup`: set or replace the service password.
 *
 * The hash (lib/kdf.ts) is stored root-only in <config dir>/passwd.hash and
 * handed to the module if it is loaded. Replacing a password needs the
 * current one: the stored hash checks it here, and the module checks it
 * again.
 * @module
 */

import { type Command, InvalidArgumentError, Option } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED, EXIT_PERMISSION, EXIT_USAGE } from "./_lib/errors.ts";
import { configDir, globals, hashFile, report } from "./_lib/context.ts";
import { explained } from "./_lib/explain.ts";
import { getNewPassword, getPassword } from "./_lib/password.ts";
import * as control from "../ffi/control.ts";
import { geteuid } from "../ffi/libc.ts";
import { VERSION_F_PASSWORD_SET } from "../ffi/uapi.ts";
import {
  checkIterations,
  hashPassword,
  iterationsFrom,
  parseHash,
  verifyPassword,
} from "../lib/kdf.ts";

/** Parse a --kdf-iterations value. */
export function parseIterations(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("not a whole number");
  try {
    return checkIterations(Number(value));
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Read the stored hash, or null if there is none. */
export async function readStoredHash(path: string = hashFile()): Promise<string | null> {
  let text: string;
  try {
    text = (await Deno.readTextFile(path)).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`cannot read ${path}: permission denied (run as root)`, EXIT_PERMISSION);
    }
    throw e;
  }
  try {
    parseHash(text);
  } catch (e) {
    throw new CliError(
      `${path} does not hold a valid password hash (${(e as Error).message}): ` +
        "remove it and run `bdsnap setup` again",
      EXIT_FAILED,
    );
  }
  return text;
}

/** Write the hash file atomically: directory 0700, file 0600. */
export async function writeStoredHash(hash: string, path: string = hashFile()): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, hash + "\n", { mode: 0o600, createNew: true });
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Register `setup`. */
export function register(program: Command): void {
  program
    .command("setup")
    .description("set or replace the service password (stored as a slow salted hash)")
    .option("--password-file <file>", "read the new password from the first line of FILE")
    .option(
      "--old-password-file <file>",
      "read the current password (when replacing) from FILE; default $BDSNAP_PASSWORD_FILE",
    )
    .addOption(
      new Option(
        "--kdf-iterations <n>",
        "PBKDF2 iterations (default $BDSNAP_KDF_ITERATIONS or 200000)",
      )
        .argParser(parseIterations)
        .hideHelp(),
    )
    .addHelpText(
      "after",
      "\nOn a terminal the passwords are asked for with hidden input; otherwise they come from\n" +
        "files, never from the command line. Passwords shorter than 8 characters are refused.\n" +
        "The hash is kept in /etc/bdsnap/passwd.hash (0600; $BDSNAP_CONFIG_DIR overrides the\n" +
        "directory) and handed to the module if it is loaded.",
    )
    .action(
      async (
        o: { passwordFile?: string; oldPasswordFile?: string; kdfIterations?: number },
        cmd: Command,
      ) => {
        const opts = globals(cmd);
        const path = hashFile();
        let iterations: number;
        try {
          iterations = iterationsFrom(o.kdfIterations);
        } catch (e) {
          throw new CliError(`BDSNAP_KDF_ITERATIONS: ${(e as Error).message}`, EXIT_USAGE);
        }
        const stored = await readStoredHash(path);
        const loaded = control.isLoaded();
        const euid = geteuid();
        const moduleHasPassword = loaded &&
          (explained({ op: "setup", euid }, () => control.version()).flags &
              VERSION_F_PASSWORD_SET) !== 0;

        let old: string | null = null;
        if (stored !== null || moduleHasPassword) {
          old = await getPassword({
            file: o.oldPasswordFile,
            message: "Current bdsnap password:",
            optionName: "--old-password-file",
          });
          if (stored !== null && !(await verifyPassword(old, stored))) {
            throw new CliError(
              `wrong password: the current password does not match ${path}`,
              EXIT_PERMISSION,
            );
          }
        }
        const pw = await getNewPassword(o.passwordFile);
        const hash = await hashPassword(pw, { iterations });

        if (loaded) {
          explained(
            { op: "set password", euid },
            () => control.setPassword(moduleHasPassword ? old : null, hash),
          );
        }
        try {
          await writeStoredHash(hash, path);
        } catch (e) {
          const why = e instanceof Deno.errors.PermissionDenied
            ? "permission denied (run as root)"
            : (e as Error).message;
          throw new CliError(
            `cannot write ${path}: ${why}` +
              (loaded ? " (the loaded module has the new password)" : ""),
            e instanceof Deno.errors.PermissionDenied ? EXIT_PERMISSION : EXIT_FAILED,
          );
        }
        report(
          opts,
          `password ${stored !== null ? "replaced" : "set"}; hash stored in ${path}` +
            (loaded
              ? " and handed to the loaded module"
              : "; `bdsnap load` hands it to the module"),
          {
            hash_file: path,
            config_dir: configDir(),
            replaced: stored !== null || moduleHasPassword,
            module: loaded ? "updated" : "not-loaded",
            iterations,
          },
        );
      },
    );
}
