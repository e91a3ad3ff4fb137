/**
 * Where the CLI reads its environment and writes its output. `bin.ts` passes the process's;
 * tests pass buffers, so every command runs in process exactly as it does in a shell.
 */

/** Something text can be written to: `process.stdout`, or a buffer in tests. */
export interface OutputStream {
  write(chunk: string): unknown
  /** A terminal: progress is redrawn on one line instead of printed line by line. */
  isTTY?: boolean
}

/** The process-facing side of a CLI run. */
export interface CliIo {
  stdout: OutputStream
  stderr: OutputStream
  /** `TOLLGATE_URL`, `TOLLGATE_API_KEY`, `TOLLGATE_TENANT`, `TOLLGATE_DATABASE_URL`. */
  env: Record<string, string | undefined>
  /** Stops a running `serve` (besides SIGINT/SIGTERM): for running it in process. */
  signal?: AbortSignal
}

/** The process's own streams and environment. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env }
}
