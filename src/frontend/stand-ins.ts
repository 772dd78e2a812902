// Statements the proxy refuses inside a request's flow — a Query / Parse over query_size_limit (action "block", its
// body skipped unread), LISTEN in transaction mode —: a stand-in frame the server rejects takes the statement's place,
// so the client's error comes where the statement's answer belongs, and the reply scanner swaps the server's error
// for the proxy's (errors/query-too-large.ts, errors/listen-refused.ts). Also the sample of a statement's text that
// is logged with it.
import type { Logger } from 'pino';
import { Frontend } from '../protocol/codes.js';
import { parseMessage, query } from '../protocol/messages.js';
import type { PgError } from '../errors/pg-error.js';
import { LISTEN_STAND_IN, LISTEN_STAND_IN_MARKER, listenNeedsSessionMode } from '../errors/listen-refused.js';
import { queryTooLarge, STAND_IN_MARKER, standInText } from '../errors/query-too-large.js';

const NO_PARAM_TYPES = new Uint8Array(2);
const SAMPLE_CHARS = 200;

/** The start of a Query's or Parse's text, for a log line (control characters shown as spaces). */
export function querySample(type: number, start: Buffer): string {
  let from = 5;
  if (type === Frontend.Parse) {
    const nameEnd = start.indexOf(0, 5);
    if (nameEnd < 0) return '';
    from = nameEnd + 1;
  }
  const end = Math.min(start.length, from + SAMPLE_CHARS);
  let sample = '';
  for (const ch of start.toString('utf8', from, end)) sample += ch < ' ' ? ' ' : ch;
  return sample;
}

/** What the reply scanner does with a stand-in's answer: the server's error (found by marker) becomes `error`. */
export interface StandInRefusal {
  marker: Buffer;
  error: Buffer;
}

/** A session's stand-ins, by frame. */
export class StandIns {
  private readonly refusals = new WeakMap<Buffer, StandInRefusal>();

  /** The refusal a frame stands in for (undefined: a frame of the client's). */
  refusalOf(frame: Buffer): StandInRefusal | undefined {
    return this.refusals.get(frame);
  }

  /** A Query / Parse of `totalBytes` over query_size_limit (block), its body skipped unread: logged, stood in for. */
  forOversized(log: Logger, type: number, totalBytes: number, start: Buffer, limitBytes: number): Buffer {
    log.warn(
      { sizeBytes: totalBytes, limitBytes, sample: querySample(type, start) },
      'query over query_size_limit refused',
    );
    return this.make(
      type,
      standInText(totalBytes, limitBytes),
      STAND_IN_MARKER,
      queryTooLarge(totalBytes, limitBytes),
    );
  }

  /** A LISTEN in transaction mode (listen-check.ts): logged, stood in for. */
  forListen(log: Logger, type: number): Buffer {
    log.warn('LISTEN refused in transaction mode');
    return this.make(type, LISTEN_STAND_IN, LISTEN_STAND_IN_MARKER, listenNeedsSessionMode());
  }

  private make(type: number, text: string, marker: Buffer, error: PgError): Buffer {
    const standIn = type === Frontend.Query ? query(text) : parseMessage('', text, NO_PARAM_TYPES);
    this.refusals.set(standIn, { marker, error: error.toBuffer() });
    return standIn;
  }
}
