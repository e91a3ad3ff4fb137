export {
  parseAccount,
  parseAmount,
  parseEvery,
  parseTime,
} from './args.js'
export {
  type Answer,
  type ApiKeyInfo,
  type ClientOptions,
  type CodesBody,
  ConnectionError,
  type CreatedApiKey,
  type CycleBody,
  createClient,
  DEFAULT_URL,
  type GrantBody,
  type LedgerParams,
  type MutationOptions,
  type Problem,
  ServerError,
  TollgateClient,
} from './client.js'
export { EXIT } from './command-kit.js'
export { DEFAULT_CODES_CHUNK } from './commands/codes.js'
export { balanceText, ledgerTable } from './commands/credits.js'
export {
  type Align,
  type Column,
  formatCredits,
  formatDelta,
  formatTable,
  formatTime,
} from './format.js'
export { type CliIo, type OutputStream, processIo } from './io.js'
export { CLI_BIN } from './paths.js'
export { createProgram, type ProgramOptions, runCli } from './program.js'
export {
  DEMO_ACCOUNT,
  DEMO_CREDITS,
  DEMO_TENANT,
  type DemoSeed,
  type SeedDemoOptions,
  seedDemo,
} from './seed-demo.js'
export {
  DEFAULT_DATA_DIR,
  DEFAULT_HOST,
  DEFAULT_PORT,
  LOG_LEVELS,
  type LogLevel,
  nodeCommand,
  type ServeOptions,
  serve,
} from './serve.js'
