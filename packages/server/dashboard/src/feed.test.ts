import { describe, expect, it } from 'vitest'
import { SseParser } from './feed.js'

describe('SseParser', () => {
  it('parses events split anywhere across chunks', () => {
    const text =
      ': heartbeat\n\nevent: ready\ndata: {"tenant":"t"}\n\nevent: changes\ndata: [{"tenant":"t","account":"a","seq":1}]\n\n'
    for (let cut = 1; cut < text.length; cut += 1) {
      const p = new SseParser()
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))]
      expect(events).toEqual([
        { event: 'ready', data: '{"tenant":"t"}' },
        { event: 'changes', data: '[{"tenant":"t","account":"a","seq":1}]' },
      ])
    }
  })

  it('joins data lines, reads CRLF and defaults the event name', () => {
    const p = new SseParser()
    expect(p.push('data: one\r\ndata:two\r\n\r\nevent: x\n')).toEqual([
      { event: 'message', data: 'one\ntwo' },
    ])
    expect(p.push('\n')).toEqual([])
  })

  it('refuses an event larger than its bound instead of buffering it', () => {
    const p = new SseParser()
    expect(() => p.push(`data: ${'x'.repeat(1 << 20)}`)).toThrow('event too large')
  })
})
