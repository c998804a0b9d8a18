/**
 * The command-line parser, behind one module of ours so that a later move to
 * another parser is a local change. Every command file imports from here.
 * @module
 */
export { Command, CommanderError, InvalidArgumentError, Option } from "commander";
