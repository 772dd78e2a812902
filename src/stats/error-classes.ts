// Errors counted by SQLSTATE class (the code's first two characters, e.g. "23" integrity constraint violation): one
// slot per possible class in a flat array, indexed straight from the two bytes, so counting allocates nothing.

const ALPHABET = 36; // 0-9, A-Z
const SLOTS = ALPHABET * ALPHABET;
/** Slot for a code that is missing or malformed. */
const UNKNOWN_SLOT = SLOTS;

/** 0-9 → 0-9, A-Z (or a-z) → 10-35, anything else → -1. */
function digit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const upper = byte & ~0x20;
  if (upper >= 0x41 && upper <= 0x5a) return upper - 0x41 + 10;
  return -1;
}

function slotOf(b0: number, b1: number): number {
  const d0 = digit(b0);
  const d1 = digit(b1);
  return d0 < 0 || d1 < 0 ? UNKNOWN_SLOT : d0 * ALPHABET + d1;
}

function classOf(slot: number): string {
  if (slot === UNKNOWN_SLOT) return '??';
  const chars = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return chars[Math.floor(slot / ALPHABET)] + chars[slot % ALPHABET];
}

export class ErrorClassCounts {
  private readonly slots = new Float64Array(SLOTS + 1);
  total = 0;

  /** Count an error by its SQLSTATE text, e.g. "23505". */
  record(code: string): void {
    this.slots[code.length >= 2 ? slotOf(code.charCodeAt(0), code.charCodeAt(1)) : UNKNOWN_SLOT]++;
    this.total++;
  }

  /**
   * Count the ErrorResponse frame starting at `start` of `buf` (type byte first) by its C field. The frame may run
   * past the end of `buf` (it continues in the next read): the fields present are searched; no C field → class "??".
   */
  recordFrame(buf: Buffer, start: number): void {
    const frameEnd = start + 1 + buf.readInt32BE(start + 1);
    const end = frameEnd < buf.length ? frameEnd : buf.length;
    let p = start + 5;
    let slot = UNKNOWN_SLOT;
    while (p < end && buf[p] !== 0) {
      if (buf[p] === 0x43 /* C */) {
        if (p + 2 < end) slot = slotOf(buf[p + 1], buf[p + 2]);
        break;
      }
      const valueEnd = buf.indexOf(0, p + 1);
      if (valueEnd < 0 || valueEnd >= end) break;
      p = valueEnd + 1;
    }
    this.slots[slot]++;
    this.total++;
  }

  /** Classes seen at least once, with their counts (e.g. [["23", 4], ["42", 1]]). */
  entries(): [sqlstateClass: string, count: number][] {
    const out: [string, number][] = [];
    for (let slot = 0; slot <= SLOTS; slot++)
      if (this.slots[slot] > 0) out.push([classOf(slot), this.slots[slot]]);
    return out;
  }
}
