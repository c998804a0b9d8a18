/**
 * The password for unattended use (`bdsnap start` and `stop` at boot and
 * shutdown), where nobody types it. In order:
 * 1. `--password-file F`;
 * 2. the systemd credential `password` (`$CREDENTIALS_DIRECTORY/password`),
 *    which bdsnap-start.service loads with `LoadCredential=` from
 *    /etc/bdsnap/password, or decrypts with `LoadCredentialEncrypted=`;
 * 3. `<config dir>/password` itself, which must be root's and 0600.
 * docs/INSTALL.md, "Unattended activation", weighs the choices.
 * @module
 */

import { CliError, EXIT_FAILED, EXIT_PERMISSION } from "./errors.ts";
import { configDir } from "./context.ts";
import { passwordProblem, readPasswordFile } from "./password.ts";

/** The file the unattended password is read from, by the order above. */
export function bootPasswordFile(explicit?: string): string {
  if (explicit) return explicit;
  const creds = Deno.env.get("CREDENTIALS_DIRECTORY");
  if (creds) return `${creds}/password`;
  return `${configDir()}/password`;
}

/** Read the unattended password; refuses a fallback file others could read. */
export async function bootPassword(explicit?: string): Promise<string> {
  const file = bootPasswordFile(explicit);
  if (!explicit && !Deno.env.get("CREDENTIALS_DIRECTORY")) {
    const st = await Deno.stat(file).catch(() => null);
    if (st === null) {
      throw new CliError(
        `no password for unattended activation: give --password-file, or put it in ${file} ` +
          "(root only, mode 0600) or in a systemd credential named password",
        EXIT_FAILED,
      );
    }
    if (st.uid !== 0 || ((st.mode ?? 0) & 0o077) !== 0) {
      throw new CliError(
        `${file} must be root's with mode 0600 (it is uid ${st.uid}, mode ${
          ((st.mode ?? 0) & 0o777).toString(8)
        }): anyone who reads it can stop the snapshots`,
        EXIT_PERMISSION,
      );
    }
  }
  const pw = await readPasswordFile(file);
  const problem = passwordProblem(pw, false);
  if (problem) throw new CliError(`${problem} (in ${file})`, EXIT_FAILED);
  return pw;
}
