/**
 * An append-only column of numbers in typed-array chunks, for the memory store's outbox (which
 * account and ledger entry each event is, every tenant's event numbers). A plain array that
 * grows for the life of the store is copied whole at each growth, and one of objects is traced
 * by every major GC; here a full chunk is never copied again and holds nothing to trace.
 */

/** Numbers per full chunk (512 KiB of doubles). */
const CHUNK = 65_536
/** The first chunk's size: a store with few events keeps a few hundred bytes per column. */
const FIRST = 64

export class NumberColumn {
  #chunks: Float64Array[] = []
  #n = 0

  get length(): number {
    return this.#n
  }

  push(value: number): void {
    const i = this.#n
    const k = i % CHUNK
    const c = (i - k) / CHUNK
    let chunk = this.#chunks[c]
    if (chunk === undefined) {
      chunk = new Float64Array(c === 0 ? FIRST : CHUNK)
      this.#chunks.push(chunk)
    } else if (k === chunk.length) {
      // Only the first chunk grows (doubling up to CHUNK); later ones start full size.
      const grown = new Float64Array(k * 2)
      grown.set(chunk)
      chunk = grown
      this.#chunks[c] = grown
    }
    chunk[k] = value
    this.#n = i + 1
  }

  /** The value at `i` (0 ≤ i < length). */
  at(i: number): number {
    const k = i % CHUNK
    return this.#chunks[(i - k) / CHUNK]![k]!
  }

  clear(): void {
    this.#chunks = []
    this.#n = 0
  }
}
