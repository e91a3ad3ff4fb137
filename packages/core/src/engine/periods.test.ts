import { describe, expect, it } from 'vitest'
import { periodStart } from './periods.js'

const DAY = 86_400_000
const utc = (iso: string) => Date.parse(iso)
const iso = (ms: number) => new Date(ms).toISOString()

describe('periodStart: fixed-length periods', () => {
  const anchor = utc('2027-03-14T09:26:53.589Z')

  it('index 0 is the anchor for every kind', () => {
    expect(periodStart(anchor, 'day', 0)).toBe(anchor)
    expect(periodStart(anchor, 'week', 0)).toBe(anchor)
    expect(periodStart(anchor, 'month', 0)).toBe(anchor)
    expect(periodStart(anchor, { days: 30 }, 0)).toBe(anchor)
  })

  it("'day' is 24 h steps", () => {
    expect(periodStart(anchor, 'day', 1)).toBe(anchor + DAY)
    expect(iso(periodStart(anchor, 'day', 1))).toBe('2027-03-15T09:26:53.589Z')
    expect(periodStart(anchor, 'day', 365)).toBe(anchor + 365 * DAY)
  })

  it("'week' is 7 × 24 h steps", () => {
    expect(periodStart(anchor, 'week', 1)).toBe(anchor + 7 * DAY)
    expect(iso(periodStart(anchor, 'week', 2))).toBe('2027-03-28T09:26:53.589Z')
  })

  it('{ days: n } is n × 24 h steps', () => {
    expect(periodStart(anchor, { days: 1 }, 3)).toBe(anchor + 3 * DAY)
    expect(periodStart(anchor, { days: 30 }, 1)).toBe(anchor + 30 * DAY)
    expect(iso(periodStart(anchor, { days: 10 }, 2))).toBe('2027-04-03T09:26:53.589Z')
  })

  it('large indexes stay exact', () => {
    expect(periodStart(anchor, 'day', 100_000)).toBe(anchor + 100_000 * DAY)
    expect(periodStart(anchor, 'week', 5_000)).toBe(anchor + 35_000 * DAY)
    expect(periodStart(anchor, { days: 3_660 }, 50)).toBe(anchor + 183_000 * DAY)
  })
})

describe("periodStart: 'month'", () => {
  it('anchored on Jan 31 clamps to the end of shorter months and returns to the 31st', () => {
    const a = utc('2028-01-31T00:00:00.000Z')
    expect(
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((i) =>
        iso(periodStart(a, 'month', i)).slice(0, 10),
      ),
    ).toEqual([
      '2028-01-31',
      '2028-02-29', // leap year
      '2028-03-31',
      '2028-04-30',
      '2028-05-31',
      '2028-06-30',
      '2028-07-31',
      '2028-08-31',
      '2028-09-30',
      '2028-10-31',
      '2028-11-30',
      '2028-12-31',
      '2029-01-31',
      '2029-02-28',
    ])
  })

  it('anchored on Jan 31 2027 gives Feb 28 (no leap year)', () => {
    const a = utc('2027-01-31T12:00:00.000Z')
    expect(iso(periodStart(a, 'month', 1))).toBe('2027-02-28T12:00:00.000Z')
    expect(iso(periodStart(a, 'month', 2))).toBe('2027-03-31T12:00:00.000Z')
    expect(iso(periodStart(a, 'month', 3))).toBe('2027-04-30T12:00:00.000Z')
  })

  it('anchored on the 30th clamps only February', () => {
    const a = utc('2027-01-30T00:00:00.000Z')
    expect(iso(periodStart(a, 'month', 1)).slice(0, 10)).toBe('2027-02-28')
    expect(iso(periodStart(a, 'month', 2)).slice(0, 10)).toBe('2027-03-30')
    expect(iso(periodStart(a, 'month', 13)).slice(0, 10)).toBe('2028-02-29')
  })

  it('anchored on Feb 29 stays on the 29th where it exists', () => {
    const a = utc('2028-02-29T06:00:00.000Z')
    expect(iso(periodStart(a, 'month', 1))).toBe('2028-03-29T06:00:00.000Z')
    expect(iso(periodStart(a, 'month', 12))).toBe('2029-02-28T06:00:00.000Z')
    expect(iso(periodStart(a, 'month', 48))).toBe('2032-02-29T06:00:00.000Z')
  })

  it('anchored on the 15th is always the 15th', () => {
    const a = utc('2027-05-15T10:00:00.000Z')
    for (let i = 0; i < 36; i++) {
      const d = new Date(periodStart(a, 'month', i))
      expect(d.getUTCDate()).toBe(15)
      expect(d.getUTCMonth()).toBe((4 + i) % 12)
      expect(d.getUTCFullYear()).toBe(2027 + Math.floor((4 + i) / 12))
      expect(d.getUTCHours()).toBe(10)
    }
    expect(iso(periodStart(a, 'month', 8))).toBe('2028-01-15T10:00:00.000Z')
  })

  it('keeps the time of day to the millisecond', () => {
    const a = utc('2027-01-31T23:59:59.999Z')
    expect(iso(periodStart(a, 'month', 1))).toBe('2027-02-28T23:59:59.999Z')
    expect(iso(periodStart(a, 'month', 5))).toBe('2027-06-30T23:59:59.999Z')
    const b = utc('2027-08-07T03:04:05.006Z')
    expect(iso(periodStart(b, 'month', 7))).toBe('2028-03-07T03:04:05.006Z')
  })

  it('12 months later is the same date next year', () => {
    for (const s of [
      '2027-01-01T00:00:00.000Z',
      '2027-03-31T08:30:00.000Z',
      '2027-07-15T12:00:00.000Z',
      '2027-12-31T23:00:00.000Z',
    ]) {
      const a = utc(s)
      expect(iso(periodStart(a, 'month', 12))).toBe(s.replace('2027', '2028'))
      expect(iso(periodStart(a, 'month', 24))).toBe(s.replace('2027', '2029'))
    }
  })

  it('crosses the year boundary', () => {
    const a = utc('2027-11-30T00:00:00.000Z')
    expect(iso(periodStart(a, 'month', 1)).slice(0, 10)).toBe('2027-12-30')
    expect(iso(periodStart(a, 'month', 2)).slice(0, 10)).toBe('2028-01-30')
    expect(iso(periodStart(a, 'month', 3)).slice(0, 10)).toBe('2028-02-29')
  })

  it('large indexes: 100 and 1000 years later', () => {
    const a = utc('2028-01-31T07:00:00.000Z')
    expect(iso(periodStart(a, 'month', 1_200))).toBe('2128-01-31T07:00:00.000Z')
    expect(iso(periodStart(a, 'month', 1_201))).toBe('2128-02-29T07:00:00.000Z')
    expect(iso(periodStart(a, 'month', 12_000))).toBe('3028-01-31T07:00:00.000Z')
    // 2100 is not a leap year
    expect(iso(periodStart(a, 'month', 865))).toBe('2100-02-28T07:00:00.000Z')
  })

  it('periods are strictly increasing', () => {
    const a = utc('2027-01-31T00:00:00.000Z')
    let prev = periodStart(a, 'month', 0)
    for (let i = 1; i < 600; i++) {
      const next = periodStart(a, 'month', i)
      expect(next).toBeGreaterThan(prev)
      prev = next
    }
  })
})
