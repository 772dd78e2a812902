// COPY … FROM STDIN data split by shard: the client's CopyData stream (text, CSV or binary, chunked anywhere) is cut
// into rows, each row's sharding key is read (escapes, quotes and NULL markers as PostgreSQL reads them) and the row's
// bytes are queued, unchanged, for its shard. Header lines, the binary file header/trailer and the `\.` end marker go
// to every shard. Without a key column (a table copied to every shard) every row goes to every shard.
// Hand-written rather than a CSV library: it must match PostgreSQL's COPY dialect byte for byte and pass rows on
// without re-encoding them.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';

export interface CopyDataFormat {
  readonly format: 'text' | 'csv' | 'binary';
  readonly delimiter: string;
  readonly quote: string;
  readonly escape: string;
  readonly nullText: string;
  readonly header: boolean;
}

/** The shard of a key (raw field bytes, null for SQL NULL); `isBinary`: the binary COPY format's field bytes. */
export type KeyToShard = (key: Buffer | null, isBinary: boolean) => number;

const NL = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const BINARY_HEADER_FIXED = BINARY_SIGNATURE.length + 8; // + flags int32 + extension length int32

function badData(message: string, row: number): PgError {
  return new PgError('ERROR', SqlState.BadCopyFileFormat, message, `COPY data row ${row}`);
}

export class CopyRowRouter {
  private readonly fmt: CopyDataFormat;
  private readonly keyIndex: number | null;
  private readonly shardCount: number;
  private readonly shardOf: KeyToShard;
  private readonly delimiter: number;
  private readonly quote: number;
  private readonly escape: number;
  private readonly nullText: Buffer;
  /** Bytes of an incomplete row (or binary header/tuple) carried over to the next chunk. */
  private pending: Buffer | null = null;
  private out: Buffer[][];
  private isHeaderDone: boolean;
  /** The `\.` marker or the binary trailer was seen: later data is ignored (as PostgreSQL does). */
  private isEnded = false;
  /** Data rows routed so far. */
  rows = 0;

  /** `keyIndex`: 0-based column of the sharding key in each row; null = every row to every shard. */
  constructor(fmt: CopyDataFormat, keyIndex: number | null, shardCount: number, shardOf: KeyToShard) {
    this.fmt = fmt;
    this.keyIndex = keyIndex;
    this.shardCount = shardCount;
    this.shardOf = shardOf;
    this.delimiter = fmt.delimiter.charCodeAt(0);
    this.quote = fmt.quote.charCodeAt(0);
    this.escape = fmt.escape.charCodeAt(0);
    this.nullText = Buffer.from(fmt.nullText, 'utf8');
    this.out = Array.from({ length: shardCount }, () => []);
    this.isHeaderDone = fmt.format === 'binary' ? false : !fmt.header;
  }

  /** Feed the next chunk of the data stream (a CopyData message's body). Throws PgError for rows it cannot route. */
  push(chunk: Buffer): void {
    if (this.isEnded || chunk.length === 0) return;
    const data = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    const used = this.fmt.format === 'binary' ? this.binaryRows(data) : this.textRows(data);
    if (used < data.length && !this.isEnded) this.pending = Buffer.from(data.subarray(used));
  }

  /** End of the data (CopyDone): a last text row without a line end is routed as a row. */
  end(): void {
    const rest = this.pending;
    this.pending = null;
    if (rest === null || this.isEnded) return;
    if (this.fmt.format === 'binary')
      throw badData('COPY binary data ends in the middle of a row', this.rows + 1);
    this.routeTextRow(rest, rest.length);
  }

  /** The bytes queued per shard since the last call (index = shard). */
  take(): Buffer[][] {
    const out = this.out;
    this.out = Array.from({ length: this.shardCount }, () => []);
    return out;
  }

  private toAll(bytes: Buffer): void {
    for (const list of this.out) list.push(bytes);
  }

  // --- text and CSV -------------------------------------------------------------------------------------------

  /** Route every complete row in `data`; returns how many bytes were consumed. */
  private textRows(data: Buffer): number {
    let start = 0;
    while (start < data.length && !this.isEnded) {
      const end = this.fmt.format === 'csv' ? this.csvRowEnd(data, start) : this.textRowEnd(data, start);
      if (end < 0) break;
      this.routeTextRow(data.subarray(start, end + 1), end + 1 - start);
      start = end + 1;
    }
    return start;
  }

  /** Index of the newline ending the text-format row starting at `from` (a backslash escapes the next byte), or -1. */
  private textRowEnd(data: Buffer, from: number): number {
    let i = data.indexOf(NL, from);
    while (i >= 0) {
      let slashes = 0;
      for (let j = i - 1; j >= from && data[j] === BACKSLASH; j--) slashes++;
      if (slashes % 2 === 0) return i;
      i = data.indexOf(NL, i + 1);
    }
    return -1;
  }

  /** Index of the newline ending the CSV row starting at `from` (newlines inside quotes are data), or -1. */
  private csvRowEnd(data: Buffer, from: number): number {
    let inQuote = false;
    for (let i = from; i < data.length; i++) {
      const c = data[i];
      if (inQuote) {
        if (c === this.escape && this.escape !== this.quote && i + 1 < data.length) {
          const next = data[i + 1];
          if (next === this.quote || next === this.escape) i++;
        } else if (c === this.quote) inQuote = false; // a doubled quote closes and reopens: same state
      } else if (c === this.quote) inQuote = true;
      else if (c === NL) return i;
    }
    return -1;
  }

  /** One row (its bytes including the line end, if any): header and end marker to all, else by key. */
  private routeTextRow(row: Buffer, length: number): void {
    let contentEnd = length;
    if (contentEnd > 0 && row[contentEnd - 1] === NL) contentEnd--;
    if (contentEnd > 0 && row[contentEnd - 1] === CR) contentEnd--;
    if (!this.isHeaderDone) {
      this.isHeaderDone = true;
      this.toAll(row);
      return;
    }
    if (contentEnd === 2 && row[0] === BACKSLASH && row[1] === 0x2e) {
      this.isEnded = true; // `\.`: end of data
      this.toAll(row);
      return;
    }
    this.rows++;
    if (this.keyIndex === null) {
      this.toAll(row);
      return;
    }
    const key = this.fmt.format === 'csv' ? this.csvField(row, contentEnd) : this.textField(row, contentEnd);
    this.out[this.keyShard(key, false)].push(row);
  }

  private keyShard(key: Buffer | null, isBinary: boolean): number {
    try {
      return this.shardOf(key, isBinary);
    } catch (err) {
      if (err instanceof PgError) {
        throw new PgError(err.severity, err.code, err.message, `COPY data row ${this.rows}`, err.hint);
      }
      throw err;
    }
  }

  /** The key field of a text-format row, de-escaped; null for the NULL marker. */
  private textField(row: Buffer, end: number): Buffer | null {
    let field = 0;
    let start = 0;
    for (let i = 0; i <= end; i++) {
      if (i < end && row[i] === BACKSLASH) {
        i++;
        continue;
      }
      if (i === end || row[i] === this.delimiter) {
        if (field === this.keyIndex) {
          const raw = row.subarray(start, i);
          if (raw.equals(this.nullText)) return null;
          return raw.includes(BACKSLASH) ? unescapeText(raw) : raw;
        }
        field++;
        start = i + 1;
      }
    }
    throw badData(`missing data for the sharding key column (field ${(this.keyIndex ?? 0) + 1})`, this.rows);
  }

  /** The key field of a CSV row, unquoted; null for an unquoted NULL marker. */
  private csvField(row: Buffer, end: number): Buffer | null {
    let field = 0;
    let start = 0;
    let inQuote = false;
    for (let i = 0; i <= end; i++) {
      const c = i < end ? row[i] : -1;
      if (inQuote) {
        if (c === this.escape && this.escape !== this.quote && i + 1 < end) {
          const next = row[i + 1];
          if (next === this.quote || next === this.escape) i++;
        } else if (c === this.quote) inQuote = false;
        continue;
      }
      if (c === this.quote) {
        inQuote = true;
        continue;
      }
      if (i === end || c === this.delimiter) {
        if (field === this.keyIndex) return this.unquoteCsv(row.subarray(start, i));
        field++;
        start = i + 1;
      }
    }
    throw badData(`missing data for the sharding key column (field ${(this.keyIndex ?? 0) + 1})`, this.rows);
  }

  private unquoteCsv(raw: Buffer): Buffer | null {
    if (!raw.includes(this.quote)) return raw.equals(this.nullText) ? null : raw;
    const out: number[] = [];
    let inQuote = false;
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i];
      if (!inQuote) {
        if (c === this.quote) inQuote = true;
        else out.push(c);
        continue;
      }
      const next = i + 1 < raw.length ? raw[i + 1] : -1;
      const isEscaped =
        this.escape === this.quote
          ? c === this.quote && next === this.quote
          : c === this.escape && (next === this.quote || next === this.escape);
      if (isEscaped) {
        out.push(next);
        i++;
      } else if (c === this.quote) inQuote = false;
      else out.push(c);
    }
    return Buffer.from(out);
  }

  // --- binary ---------------------------------------------------------------------------------------------------

  private binaryRows(data: Buffer): number {
    let p = 0;
    if (!this.isHeaderDone) {
      if (data.length < BINARY_HEADER_FIXED) return 0;
      if (!data.subarray(0, BINARY_SIGNATURE.length).equals(BINARY_SIGNATURE)) {
        throw badData('COPY file signature not recognized', 0);
      }
      const extension = data.readInt32BE(BINARY_SIGNATURE.length + 4);
      if (extension < 0) throw badData('invalid COPY file header (negative extension length)', 0);
      if (data.length < BINARY_HEADER_FIXED + extension) return 0;
      p = BINARY_HEADER_FIXED + extension;
      this.toAll(data.subarray(0, p));
      this.isHeaderDone = true;
    }
    while (p + 2 <= data.length) {
      const fields = data.readInt16BE(p);
      if (fields === -1) {
        this.isEnded = true;
        this.toAll(data.subarray(p, p + 2));
        return data.length;
      }
      if (fields < 0) throw badData(`invalid field count ${fields}`, this.rows + 1);
      let q = p + 2;
      let key: Buffer | null = null;
      let isComplete = true;
      for (let f = 0; f < fields; f++) {
        if (q + 4 > data.length) {
          isComplete = false;
          break;
        }
        const len = data.readInt32BE(q);
        q += 4;
        if (len < -1) throw badData(`invalid field length ${len}`, this.rows + 1);
        if (len > 0 && q + len > data.length) {
          isComplete = false;
          break;
        }
        if (f === this.keyIndex) key = len === -1 ? null : data.subarray(q, q + len);
        if (len > 0) q += len;
      }
      if (!isComplete) break;
      this.rows++;
      const tuple = data.subarray(p, q);
      if (this.keyIndex === null) this.toAll(tuple);
      else {
        if (this.keyIndex >= fields) throw badData('missing data for the sharding key column', this.rows);
        this.out[this.keyShard(key, true)].push(tuple);
      }
      p = q;
    }
    return p;
  }
}

/** PostgreSQL's text-format escapes: \b \f \n \r \t \v, \NNN octal, \xHH hex, and \c = c for any other c. */
function unescapeText(raw: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== BACKSLASH || i + 1 >= raw.length) {
      out.push(c);
      continue;
    }
    const n = raw[++i];
    switch (n) {
      case 0x62:
        out.push(0x08);
        break; // \b
      case 0x66:
        out.push(0x0c);
        break; // \f
      case 0x6e:
        out.push(0x0a);
        break; // \n
      case 0x72:
        out.push(0x0d);
        break; // \r
      case 0x74:
        out.push(0x09);
        break; // \t
      case 0x76:
        out.push(0x0b);
        break; // \v
      case 0x78: {
        // \xH or \xHH
        let v = 0;
        let digits = 0;
        while (digits < 2 && i + 1 < raw.length && isHex(raw[i + 1])) {
          v = v * 16 + parseInt(String.fromCharCode(raw[++i]), 16);
          digits++;
        }
        out.push(digits === 0 ? 0x78 : v);
        break;
      }
      default:
        if (n >= 0x30 && n <= 0x37) {
          // \N, \NN, \NNN octal
          let v = n - 0x30;
          for (let d = 0; d < 2 && i + 1 < raw.length && raw[i + 1] >= 0x30 && raw[i + 1] <= 0x37; d++) {
            v = v * 8 + (raw[++i] - 0x30);
          }
          out.push(v & 0xff);
        } else out.push(n);
    }
  }
  return Buffer.from(out);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}
