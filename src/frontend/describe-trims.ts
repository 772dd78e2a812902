// Which Describe (statement) frames must be answered with the client's parameters only: a statement the proxy gave
// parameters of its own (pgdog.unique_id() ids, unique-id-request.ts) is described by PostgreSQL with those too, and a
// driver that checks the count (postgres.js, Prisma, node-postgres with types) would see more than it wrote. The
// rewriting step marks the frames (by identity: each is its own Buffer); when a marked frame is sent to a server, that
// server's response scanner is told to trim the ParameterDescription answering it. Every Describe of a statement in a
// request with one to trim is marked (null: untouched), so the scanner pairs replies with rules in order.
import type { ResponseScanner } from '../backend/response-scanner.js';

/** Describe frames → how many parameter types their reply keeps (null: all). Weak: frames come and go with requests. */
const keeps = new WeakMap<Buffer, number | null>();

export function markDescribe(frame: Buffer, keep: number | null): void {
  keeps.set(frame, keep);
}

/** `frame` (a Describe) is being sent on the server `scanner` reads: its reply is trimmed if it was marked. */
export function noteDescribeSent(frame: Buffer, scanner: ResponseScanner): void {
  const keep = keeps.get(frame);
  if (keep !== undefined) scanner.trimNextParameterDescription(keep);
}
