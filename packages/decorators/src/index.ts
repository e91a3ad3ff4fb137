export { currentCredits } from './credits.js'
export {
  createMetered,
  type MeteredDecorator,
  type MeteredFactory,
  type MeteredMethod,
  type MeteredMethodOptions,
  type MeteredOptions,
  type MeteredReturn,
  type MethodCall,
} from './metered.js'
