import { memoryStore } from '@tollgate/core'
import { describeStoreConformance } from './index.js'

describeStoreConformance({ name: 'memory', createStore: () => memoryStore() })
