/**
 * `@tollgate/core/store`: the Store contract and what a new store needs beside the engine:
 * the request and outcome shapes, ledger cursors, the API key registry, id generation.
 * Imported by store authors (`@tollgate/postgres`) and the server; apps never need it.
 */
export { newId } from './ids.js'
export {
  type ApiKeyRecord,
  type CodeBatch,
  type CodeBatchOutcome,
  decodeCursor,
  type ExecuteRequest,
  encodeCursor,
  errorOutcome,
  type KeyRegistry,
  type LedgerRequest,
  memoryKeyRegistry,
  type Outcome,
  type Store,
} from './store.js'
