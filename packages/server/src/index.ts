export {
  type ApiKeyInfo,
  generateApiKey,
  hashApiKey,
  type KeyRole,
  parseApiKey,
} from './api-keys.js'
export type {
  CreateServerOptions,
  MetricsOptions,
  RedeemLimitOptions,
  ServerMeterOptions,
} from './options.js'
export {
  createServer,
  type ListenOptions,
  type ListenResult,
  TollgateServer,
} from './server.js'
