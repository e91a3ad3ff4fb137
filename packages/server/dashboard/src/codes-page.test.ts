import { describe, expect, it } from 'vitest'
import { codesCsv } from './codes-page.js'

describe('codesCsv', () => {
  it('writes a header and one line per code', () => {
    expect(codesCsv(['TG-AAAA-BBBB-CCCC-D', 'TG-EEEE-FFFF-GGGG-H'], 25)).toBe(
      'code,credits\r\nTG-AAAA-BBBB-CCCC-D,25\r\nTG-EEEE-FFFF-GGGG-H,25\r\n',
    )
  })
})
