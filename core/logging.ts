/**
 * Logs are JSON lines on stderr (stdout is reserved for each command's result line), carrying
 * the annotations a caller adds (run_key, output_id, ...).
 */
import { Logger } from "effect";

/** The JSON-lines logger on stderr, replacing Effect's default console logger. */
export const JsonLogs = Logger.layer([Logger.withConsoleError(Logger.formatJson)]);
