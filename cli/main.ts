#!/usr/bin/env -S deno run -A
/**
 * `bdsnap`: the command-line entry point. Builds the command tree, runs it,
 * and turns every failure into one line on stderr and an exit code, with
 * `--json` also an error object on stdout (cli/_lib/errors.ts; docs/CLI.md,
 * "Scripting contract"). `BDSNAP_DEBUG=1` adds stack traces.
 * @module
 */

import { Command, CommanderError, Option } from "./_lib/commander.ts";
import { CliError, errorJson, EXIT_FAILED, EXIT_OK, EXIT_PIPE, EXIT_USAGE } from "./_lib/errors.ts";
import { toCliError } from "./_lib/explain.ts";
import { eprintln, io, isStdoutClosed, printJsonLine, StdoutClosedError } from "./_lib/io.ts";

import * as setup from "./setup.ts";
import * as load from "./load.ts";
import * as unload from "./unload.ts";
import * as activate from "./activate.ts";
import * as deactivate from "./deactivate.ts";
import * as start from "./start.ts";
import * as stop from "./stop.ts";
import * as status from "./status.ts";
import * as sessions from "./sessions.ts";
import * as show from "./show.ts";
import * as watch from "./watch.ts";
import * as prune from "./prune.ts";
import * as restore from "./restore.ts";
import * as exportCmd from "./export.ts";
import * as verify from "./verify.ts";
import * as view from "./view.ts";
import * as completions from "./completions.ts";

/** The program's version, as `bdsnap --version` prints it. */
export const VERSION = "0.1.0";

/** Every command, in the order `bdsnap --help` lists them. Adding one is one line here. */
const COMMANDS: ReadonlyArray<{ register(program: Command): void }> = [
  setup,
  load,
  unload,
  activate,
  deactivate,
  start,
  stop,
  status,
  sessions,
  show,
  watch,
  prune,
  restore,
  exportCmd,
  view,
  verify,
  completions,
];

/** Build the whole command tree (without parsing anything). */
export function buildProgram(): Command {
  const program = new Command("bdsnap")
    .description("Copy-on-write snapshot sessions for Linux block devices")
    .version(VERSION, "-V, --version", "print the version")
    .addOption(
      new Option("--store <dir>", "snapshot store root (default: the module's, or /snapshot)"),
    )
    .option("--json", "machine-readable output on stdout")
    .option("-q, --quiet", "no informational messages")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(s.replace(/^error: /, "bdsnap: ")),
    })
    .showSuggestionAfterError(true)
    .exitOverride();
  for (const c of COMMANDS) c.register(program);
  return program;
}

function debugging(): boolean {
  try {
    return Deno.env.get("BDSNAP_DEBUG") === "1";
  } catch {
    return false;
  }
}

/**
 * Was `--json` given? Read from the arguments themselves (up to `--`), since
 * a usage error can stop commander before it has parsed the options.
 */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).includes("--json");
}

/** The failure behind a commander exit, or `null` when it is none (help, version). */
function usageError(e: CommanderError): CliError | null {
  if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return null;
  if (e.code === "commander.help") {
    return e.exitCode === 0 ? null : new CliError("a command is needed: `bdsnap help`", EXIT_USAGE);
  }
  return new CliError(e.message.replace(/^error: /, ""), EXIT_USAGE);
}

/**
 * Print what went wrong as one line on stderr (with the stack trace only when
 * BDSNAP_DEBUG=1), with `json` also as an error object on stdout, and return
 * the exit code for it. A closed stdout ends quietly with {@linkcode EXIT_PIPE}.
 */
export function reportError(e: unknown, json = false): number {
  if (e instanceof StdoutClosedError || isStdoutClosed()) return EXIT_PIPE;
  try {
    return report(e, json);
  } catch (e2) {
    if (e2 instanceof StdoutClosedError) return EXIT_PIPE;
    // stderr is closed too: nothing can be said, the exit code still can
    if (e2 instanceof Deno.errors.BrokenPipe) return EXIT_FAILED;
    throw e2;
  }
}

function report(e: unknown, json: boolean): number {
  if (e instanceof CommanderError) {
    // commander has printed the help, the version or the usage error already
    const ce = usageError(e);
    if (ce === null) return EXIT_OK;
    if (json) printJsonLine(errorJson(ce));
    return ce.exitCode;
  }
  const ce: CliError | null = toCliError(e);
  if (ce) {
    if (ce.message !== "") { // "" = already reported, JSON included
      eprintln(`bdsnap: ${ce.message}`);
      if (json) printJsonLine(errorJson(ce));
    }
    if (debugging() && e instanceof Error && e.stack) eprintln(e.stack);
    return ce.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const message = `internal error: ${err.message}`;
  eprintln(`bdsnap: ${message}`);
  if (debugging()) eprintln(err.stack ?? "");
  else eprintln("bdsnap: (set BDSNAP_DEBUG=1 to see where)");
  if (json) printJsonLine(errorJson({ code: "internal", errno: null, message, problems: [] }));
  return EXIT_FAILED;
}

/** Run the CLI on `args` (without the program name); resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(args, { from: "user" });
    // A command that caught the closed stdout still ends as SIGPIPE would have.
    return isStdoutClosed() ? EXIT_PIPE : EXIT_OK;
  } catch (e) {
    return reportError(e, wantsJson(args));
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
