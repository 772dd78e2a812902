// The server→client hot path: walks reply frames by their 5-byte headers and forwards the bytes untouched.
// Only ReadyForQuery and ParameterStatus bodies are read (and a ParameterDescription the proxy was asked to trim). Replies to messages the proxy injected on its own
// (statement re-preparation, parameter sync) are swallowed by rules keyed on how many ReadyForQuery came before.
// A FATAL (or PANIC) ErrorResponse is held back and handed to the owner whole: the server closes right after it, and
// the client gets those exact bytes when the connection is found closed (wherever its replies were going meanwhile).
// Hand-written rather than pg-protocol's Parser: that decodes every DataRow into objects; this allocates nothing
// per message on the common path (one `subarray` per chunk at most).
import { Buffer } from 'node:buffer';
import { Backend } from '../protocol/codes.js';

export interface ScannerOwner {
  forward(buf: Buffer): void;
  readyForQuery(status: number): void;
  parameterStatus(name: string, value: string): void;
  /**
   * Any ErrorResponse went by (the batch in flight failed somewhere); it starts at `start` in `buf` and may continue
   * past its end (the rest comes in the next chunk).
   */
  errorSeen(buf: Buffer, start: number): void;
  /** An ErrorResponse inside swallowed replies (raw frame), for logging. */
  swallowedError?(frame: Buffer): void;
  /** A FATAL/PANIC ErrorResponse (a view: copy to keep), not forwarded: the server is about to close. */
  fatalSeen(frame: Buffer): void;
  protocolError(reason: string): void;
}

/** Rule type for "everything up to and including the next ReadyForQuery". */
const UNTIL_READY = -1;

/** "The next ErrorResponse mentioning `marker`, in window `afterReady`, goes to the client as `bytes` instead." */
interface Replacement {
  afterReady: number;
  marker: Buffer;
  bytes: Buffer;
}

/**
 * "The next ParameterDescription in window `afterReady` keeps its first `keep` types (null: goes as it is)": a statement
 * the proxy gave parameters of its own (pgdog.unique_id() ids) is described with the client's parameters only.
 */
interface ParameterTrim {
  afterReady: number;
  keep: number | null;
}

interface SwallowRule {
  /** Active once this many ReadyForQuery have been seen on the connection. */
  afterReady: number;
  /** A reply type byte to swallow `count` of, or UNTIL_READY. */
  type: number;
  count: number;
  /**
   * 0: the next `count` replies of `type` in the window. Else (ParseComplete / CloseComplete, count 1): only the reply
   * of that position among the window's replies of its type — the answer to the ordinal-th Parse / Close sent in it.
   */
  ordinal: number;
}

/** Largest reply frame whose body is held back across chunks (ReadyForQuery/ParameterStatus/swallowed Error). */
const MAX_HELD_FRAME = 1 << 20;
/** An ErrorResponse's severity fields come first: an error not judged within this many bytes is not a FATAL one. */
const SEVERITY_PREFIX_BYTES = 256;

const FIELD_SEVERITY = 0x53; // 'S', localized
const FIELD_SEVERITY_V = 0x56; // 'V', never localized (PostgreSQL 9.6+)

/**
 * Whether the ErrorResponse at `start` (available up to `to`) ends the connection: its non-localized severity (or the
 * localized one, from servers without it) is FATAL or PANIC. 'unknown' when the fields deciding it are not all there.
 */
export function errorSeverityIsFatal(buf: Buffer, start: number, to: number): boolean | 'unknown' {
  let p = start + 5;
  let severity: string | null = null;
  while (p < to) {
    const field = buf[p];
    // After 'S' comes 'V' (PostgreSQL 9.6+); any other field, or the end, means an old server: 'S' decides.
    if (severity !== null && field !== FIELD_SEVERITY_V) return severity === 'FATAL' || severity === 'PANIC';
    if (field === 0) return false;
    const end = buf.indexOf(0, p + 1);
    if (end < 0 || end >= to) return 'unknown';
    if (field === FIELD_SEVERITY_V) {
      const v = buf.toString('latin1', p + 1, end);
      return v === 'FATAL' || v === 'PANIC';
    }
    if (field === FIELD_SEVERITY) severity = buf.toString('latin1', p + 1, end);
    p = end + 1;
  }
  return 'unknown';
}

/** Bytes [start, end) of `chunk`: the chunk itself when that is all of it (a whole reply in one read: no view made). */
function span(chunk: Buffer, start: number, end: number): Buffer {
  return start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
}

/** withholdFatal's answers besides a position. */
const HELD = -1;
const NOT_FATAL = -2;

export class ResponseScanner {
  private readonly owner: ScannerOwner;
  /** Bytes left of a frame that continues into the next chunk. */
  private remaining = 0;
  /** Whether the frame being skipped across chunks is dropped rather than forwarded. */
  private droppingRemaining = false;
  /** A partial header, or a partial frame whose body we must read. */
  private carry: Buffer | null = null;
  /** ReadyForQuery replies expected (everything sent) and seen. */
  readyExpected = 0;
  readySeen = 0;
  private rules: SwallowRule[] = [];
  /** ParseComplete / CloseComplete replies seen in the current window (since the last ReadyForQuery). */
  private parsesSeen = 0;
  private closesSeen = 0;
  /** Parse / Close messages sent in the window still open after the last write (no Sync / Query closed it). */
  private parsesSent = 0;
  private closesSent = 0;
  /** Server errors to replace by the proxy's own, in order (see replaceError). */
  private replacements: Replacement[] = [];
  /** ParameterDescriptions to trim, in the order of the Describes (of statements) sent. */
  private trims: ParameterTrim[] = [];

  constructor(owner: ScannerOwner) {
    this.owner = owner;
  }

  get isAtMessageBoundary(): boolean {
    return this.remaining === 0 && this.carry === null;
  }

  get hasRules(): boolean {
    return this.rules.length > 0;
  }

  /** The replies to the next Query sent, up to and including its ReadyForQuery, are swallowed. */
  swallowNextUntilReady(): void {
    this.rules.push({ afterReady: this.readyExpected, type: UNTIL_READY, count: 1, ordinal: 0 });
  }

  /**
   * The next reply of `type` (e.g. ParseComplete) after the ReadyForQuery replies owed so far is swallowed: it answers
   * a message the proxy injected into the batch being written. Replies of one type are indistinguishable, so
   * matching in order keeps the client's sequence intact.
   */
  swallowNext(type: number): void {
    const last = this.rules[this.rules.length - 1];
    if (last && last.type === type && last.ordinal === 0 && last.afterReady === this.readyExpected)
      last.count++;
    else this.rules.push({ afterReady: this.readyExpected, type, count: 1, ordinal: 0 });
  }

  /**
   * The reply to a Parse or Close the proxy injected into the write being built is swallowed — by its position, not
   * as "the next of its type": a client's own Parse or Close earlier in the same window keeps its reply, in its place.
   * `inWrite`: the injected message's position among the messages of its kind (Parse: ParseComplete; Close:
   * CloseComplete) of this write since its last Sync / Query (1-based); `isNewWindow`: this write closed the window
   * open before it (a Sync or Query came first), so none sent earlier count.
   */
  swallowReply(type: number, inWrite: number, isNewWindow: boolean): void {
    const before = isNewWindow ? 0 : type === Backend.ParseComplete ? this.parsesSent : this.closesSent;
    this.rules.push({ afterReady: this.readyExpected, type, count: 1, ordinal: before + inWrite });
  }

  /**
   * A write went out (rewritten by the statement cache): whether it left its window open, and if so the Parse and
   * Close messages it sent since its last Sync / Query (`isNewWindow`: it had one), for swallowReply's positions in
   * the next write.
   */
  noteWriteEnd(isOpen: boolean, parses: number, closes: number, isNewWindow: boolean): void {
    if (!isOpen) {
      this.parsesSent = this.closesSent = 0;
      return;
    }
    this.parsesSent = (isNewWindow ? 0 : this.parsesSent) + parses;
    this.closesSent = (isNewWindow ? 0 : this.closesSent) + closes;
  }

  /**
   * The client gets `bytes` in place of the next ErrorResponse mentioning `marker` before the next ReadyForQuery owed
   * after what was sent so far: the server's answer to a stand-in the proxy sent for a request it refuses itself, so
   * the refusal arrives exactly where the request's answer belongs. Another error in that window (one that made the
   * server skip the stand-in) is forwarded as it is, and the replacement lapses at the ReadyForQuery.
   */
  replaceError(marker: Buffer, bytes: Buffer): void {
    this.replacements.push({ afterReady: this.readyExpected, marker, bytes });
  }

  /**
   * As replaceError, for the request in flight (its ReadyForQuery not seen yet): the next ErrorResponse mentioning
   * `marker` before that ReadyForQuery goes to the client as `bytes` (the deadlock check's cancel: 57014 → 40P01).
   * It comes before any replacement pinned to a later request.
   */
  replaceErrorInFlight(marker: Buffer, bytes: Buffer): void {
    this.replacements.unshift({ afterReady: this.readySeen, marker, bytes });
  }

  /**
   * The reply to the next Describe of a statement sent (after the ReadyForQuery replies owed so far) lists only its first
   * `keep` parameter types; null: it goes as it is (given for every Describe of a statement in a window where one is
   * trimmed, so replies and rules pair up in order). A window that ends before its reply came (an error) drops the rule.
   */
  trimNextParameterDescription(keep: number | null): void {
    this.trims.push({ afterReady: this.readyExpected, keep });
  }

  reset(): void {
    this.trims = [];
    this.remaining = 0;
    this.droppingRemaining = false;
    this.carry = null;
    this.rules = [];
    this.replacements = [];
    this.readyExpected = this.readySeen = 0;
    this.parsesSeen = this.closesSeen = this.parsesSent = this.closesSent = 0;
  }

  scan(input: Buffer): void {
    let chunk = input;
    if (this.carry !== null) {
      chunk = Buffer.concat([this.carry, input]);
      this.carry = null;
    }
    const n = chunk.length;
    let i = 0;
    let outStart = 0;

    if (this.remaining > 0) {
      const take = this.remaining < n ? this.remaining : n;
      this.remaining -= take;
      i = take;
      if (this.droppingRemaining) outStart = take;
      if (this.remaining > 0) {
        if (!this.droppingRemaining) this.owner.forward(chunk);
        return;
      }
    }

    while (i < n) {
      if (n - i < 5) {
        this.carry = Buffer.from(chunk.subarray(i));
        break;
      }
      const type = chunk[i];
      const len = chunk.readInt32BE(i + 1);
      if (len < 4) {
        this.owner.protocolError(`invalid message length ${len} for type 0x${type.toString(16)}`);
        return;
      }
      const end = i + 1 + len;
      // Counted always (a swallow rule may be registered while its window's first replies are already through).
      if (type === Backend.ParseComplete) this.parsesSeen++;
      else if (type === Backend.CloseComplete) this.closesSeen++;

      if (type === Backend.ErrorResponse) {
        let next = this.withholdFatal(chunk, i, len, end, outStart);
        if (next === NOT_FATAL && this.replacements.length > 0)
          next = this.replace(chunk, i, len, end, outStart);
        if (next === HELD) return;
        if (next !== NOT_FATAL) {
          outStart = next;
          i = next;
          continue;
        }
      }

      // Fast path: no swallow rules and not a frame we read → skip by length.
      if (
        this.rules.length === 0 &&
        type !== Backend.ReadyForQuery &&
        type !== Backend.ParameterStatus &&
        (type !== Backend.ParameterDescription || this.trims.length === 0)
      ) {
        if (type === Backend.ErrorResponse) this.owner.errorSeen(chunk, i);
        if (end > n) {
          this.remaining = end - n;
          this.droppingRemaining = false;
          i = n;
          break;
        }
        i = end;
        continue;
      }

      const drop = this.shouldDrop(type);
      const trim = !drop && type === Backend.ParameterDescription ? this.takeTrim(end <= n) : undefined;
      const needsBody =
        type === Backend.ReadyForQuery ||
        type === Backend.ParameterStatus ||
        trim !== undefined ||
        (drop && type === Backend.ErrorResponse);
      // A frame held back for its body is scanned again, whole, with the next chunk: reported then.
      if (type === Backend.ErrorResponse && (end <= n || !needsBody)) this.owner.errorSeen(chunk, i);
      if (end > n) {
        if (needsBody) {
          if (len > MAX_HELD_FRAME) {
            this.owner.protocolError(`reply frame of type 0x${type.toString(16)} too large (${len} bytes)`);
            return;
          }
          if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
          this.carry = Buffer.from(chunk.subarray(i));
          return;
        }
        if (drop) {
          if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
          outStart = n;
        }
        this.remaining = end - n;
        this.droppingRemaining = drop;
        i = n;
        break;
      }

      if (drop) {
        if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
        outStart = end;
      }
      if (type === Backend.ReadyForQuery) {
        // Everything up to and including this ReadyForQuery reaches the client before the session hears of it,
        // because the session may hand the server to another client right away.
        if (!drop && end > outStart) this.owner.forward(span(chunk, outStart, end));
        outStart = end;
        this.readySeen++;
        this.parsesSeen = this.closesSeen = 0;
        if (drop) this.rules.shift();
        this.pruneRules();
        if (!drop) this.owner.readyForQuery(chunk[i + 5]);
      } else if (type === Backend.ParameterStatus) {
        const nameEnd = chunk.indexOf(0, i + 5);
        const valueEnd = chunk.indexOf(0, nameEnd + 1);
        if (nameEnd > 0 && valueEnd > 0 && valueEnd < end) {
          this.owner.parameterStatus(
            chunk.toString('utf8', i + 5, nameEnd),
            chunk.toString('utf8', nameEnd + 1, valueEnd),
          );
        }
      } else if (drop && type === Backend.ErrorResponse) {
        this.owner.swallowedError?.(chunk.subarray(i, end));
      } else if (trim !== undefined && trim !== null) {
        const frame = trimmedParameterDescription(chunk.subarray(i, end), trim);
        if (frame !== null) {
          if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
          this.owner.forward(frame);
          outStart = end;
        }
      }
      i = end;
    }
    if (outStart < i && outStart < n) this.owner.forward(span(chunk, outStart, i));
  }

  /**
   * An ErrorResponse at `i`: a FATAL one is taken out of the stream (what precedes it is forwarded) and handed to the
   * owner; returns where scanning goes on. HELD: the frame continues in the next chunk and is kept until whole (or
   * until its severity can be read). NOT_FATAL: handle it as any other frame.
   */
  private withholdFatal(chunk: Buffer, i: number, len: number, end: number, outStart: number): number {
    const n = chunk.length;
    let isFatal = errorSeverityIsFatal(chunk, i, end < n ? end : n);
    if (isFatal === 'unknown') {
      if (end <= n || n - i >= SEVERITY_PREFIX_BYTES) return NOT_FATAL; // malformed, or not a PostgreSQL error
      isFatal = true; // keep the start until the severity is in (the frame is scanned again, whole)
    }
    if (!isFatal) return NOT_FATAL;
    if (end > n) {
      if (len > MAX_HELD_FRAME) return NOT_FATAL; // forwarded as it comes; the client gets the proxy's error too
      if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
      this.carry = Buffer.from(chunk.subarray(i));
      return HELD;
    }
    if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
    this.owner.errorSeen(chunk, i);
    this.owner.fatalSeen(chunk.subarray(i, end));
    return end;
  }

  /** An ErrorResponse at `i` while a replacement is pending: withholdFatal's answers, for a replaced error. */
  private replace(chunk: Buffer, i: number, len: number, end: number, outStart: number): number {
    const r = this.replacements[0];
    if (r.afterReady !== this.readySeen) return NOT_FATAL;
    const n = chunk.length;
    if (end > n) {
      if (len > MAX_HELD_FRAME) return NOT_FATAL;
      if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
      this.carry = Buffer.from(chunk.subarray(i));
      return HELD;
    }
    if (chunk.subarray(i, end).indexOf(r.marker) < 0) return NOT_FATAL;
    this.replacements.shift();
    if (i > outStart) this.owner.forward(chunk.subarray(outStart, i));
    this.owner.errorSeen(r.bytes, 0);
    this.owner.forward(r.bytes);
    return end;
  }

  private shouldDrop(type: number): boolean {
    const rules = this.rules;
    const rule = rules[0];
    if (rule === undefined || rule.afterReady !== this.readySeen) return false;
    if (rule.type === UNTIL_READY) return true;
    // The window's first rule of this type decides (rules of one type are registered in the order of their replies).
    for (let k = 0; k < rules.length && rules[k].afterReady === this.readySeen; k++) {
      const r = rules[k];
      if (r.type !== type) continue;
      if (r.ordinal !== 0) {
        const seen = type === Backend.ParseComplete ? this.parsesSeen : this.closesSeen;
        if (r.ordinal !== seen) return false; // a client's own reply, before the injected message's
      }
      if (--r.count === 0) rules.splice(k, 1);
      return true;
    }
    return false;
  }

  /**
   * The trim for a ParameterDescription in the current window: its `keep` (null: untouched), or undefined when no rule
   * is for it. The rule is taken only once the frame is whole (`isWhole`); until then it is only looked at.
   */
  private takeTrim(isWhole: boolean): number | null | undefined {
    const trim = this.trims[0];
    if (trim === undefined || trim.afterReady !== this.readySeen) return undefined;
    if (isWhole) this.trims.shift();
    return trim.keep;
  }

  /** Rules whose window has passed (an error made the server skip to Sync) no longer apply. */
  private pruneRules(): void {
    const trims = this.trims;
    while (trims.length > 0 && trims[0].afterReady < this.readySeen) trims.shift();
    while (this.rules.length > 0 && this.rules[0].afterReady < this.readySeen) this.rules.shift();
    const replacements = this.replacements;
    while (replacements.length > 0 && replacements[0].afterReady < this.readySeen) replacements.shift();
  }
}

/** A ParameterDescription with only its first `keep` types; null when it has no more than that (or is malformed). */
export function trimmedParameterDescription(frame: Buffer, keep: number): Buffer | null {
  if (frame.length < 7) return null;
  const count = frame.readInt16BE(5);
  if (count <= keep || frame.length < 7 + 4 * count) return null;
  const out = Buffer.allocUnsafe(7 + 4 * keep);
  out[0] = Backend.ParameterDescription;
  out.writeInt32BE(6 + 4 * keep, 1);
  out.writeInt16BE(keep, 5);
  frame.copy(out, 7, 7, 7 + 4 * keep);
  return out;
}
