// The protocol fuzzer's runner: each case sent to PostgreSQL directly (the reference) and to every target proxy, one
// fresh logged-in client per case and peer; the replies compared (compare.ts); a reply PostgreSQL gave that the proxy
// did not give within HANG_MS is a hang. After each case a fresh client must still get SELECT 1 through the proxy.
import { APP_DB, APP_PASSWORD, APP_USER } from '../proxy.js';
import { RawClient, errorFields, type RawMessage } from '../raw-client.js';
import { difference, isCaseForTarget, normalize, type Outcome, type TargetKind } from './compare.js';
import { describeCase, generateCase, type CaseProfile, type FuzzCase, type FuzzStep } from './generate.js';

/** PostgreSQL: how long a step may stay silent before its reply is taken as complete. */
const QUIET_MS = 100;
/** After the reply a step expected (or the proxy reached PostgreSQL's count): time for anything extra. */
const GRACE_MS = 25;
/** The proxy: how long it may take for a reply PostgreSQL gave. Past it, a hang. */
const HANG_MS = 2_000;

const LOGIN = { user: APP_USER, database: APP_DB };

export interface Target {
  name: string;
  kind: TargetKind;
  port: number;
  /** The cases it gets (generate.ts). */
  profile: CaseProfile;
  /** `replies`: every reply compared; `hangs`: only that it answers what PostgreSQL answers and keeps serving. */
  check: 'replies' | 'hangs';
}

export interface FuzzFailure {
  target: string;
  fuzzCase: FuzzCase;
  what: string;
}

async function loggedIn(port: number): Promise<RawClient> {
  const raw = await RawClient.connect(port);
  await raw.login(LOGIN, APP_PASSWORD);
  return raw;
}

function write(raw: RawClient, step: FuzzStep): void {
  if (!raw.closed) raw.write(Buffer.concat(step.frames.map((fr) => fr.bytes)));
}

/** Read one message within `ms`, or null (quiet or closed). */
async function next(raw: RawClient, ms: number): Promise<RawMessage | null> {
  try {
    return await raw.readMessage(ms);
  } catch {
    return null;
  }
}

/** PostgreSQL's replies to a case, and how many messages (and ReadyForQuery) each write got. */
export interface Reference {
  outcome: Outcome;
  counts: number[];
  readyCounts: number[];
}

/** PostgreSQL's replies to the case (the proxy is held to its counts). */
export async function referenceOutcome(port: number, c: FuzzCase): Promise<Reference> {
  const raw = await loggedIn(port);
  const messages: RawMessage[] = [];
  const counts: number[] = [];
  const readyCounts: number[] = [];
  try {
    for (const step of c.steps) {
      if (raw.closed) break;
      write(raw, step);
      let readies = 0;
      let isCopyIn = false;
      let n = 0;
      for (;;) {
        const isDone = step.wait === 'copyIn' ? isCopyIn : step.readies > 0 && readies >= step.readies;
        const m = await next(raw, isDone ? GRACE_MS : QUIET_MS);
        if (m === null) break;
        messages.push(m);
        n++;
        if (m.type === 'Z') readies++;
        if (m.type === 'G') isCopyIn = true;
        if (m.type === 'E' && errorFields(m.body).V === 'FATAL') await raw.waitClosed(HANG_MS);
      }
      counts.push(n);
      readyCounts.push(readies);
    }
    // PostgreSQL may close a connection over a broken frame without a reply, after answering what came before it,
    // and closes after a Terminate: wait for that close too.
    const last = c.steps[counts.length - 1];
    if (!raw.closed && (isBroken(last) || last.frames.some((fr) => fr.text === 'Terminate')))
      await raw.waitClosed(QUIET_MS);
    return { outcome: { messages, isClosed: raw.closed, isHung: false }, counts, readyCounts };
  } finally {
    raw.close();
  }
}

/**
 * Whether a step ends at a point where PostgreSQL must have answered everything before it (Sync, Flush, Query,
 * FunctionCall, the end of COPY data). PostgreSQL sends an ErrorResponse at once even without one; the proxy may hold
 * such a reply until the client's next flush point, so a step without one is not held to PostgreSQL's count.
 */
export function endsAtFlushPoint(step: FuzzStep): boolean {
  const last = step.frames[step.frames.length - 1].text;
  return !isBroken(step) && /^(Sync|Flush|Query|FunctionCall|CopyDone|CopyFail)/.test(last);
}

/** A write with a mutated frame (its length changed, truncated) or one a client must not send after login. */
function isBroken(step: FuzzStep): boolean {
  return step.frames.some(
    (fr) => fr.text.includes('[') || /^(Frame|StartupMessage|PasswordMessage)\(/.test(fr.text),
  );
}

/**
 * The proxy's replies to the case: after each step, up to PostgreSQL's count so far (HANG_MS for each message after
 * a step that ends at a flush point, QUIET_MS otherwise).
 */
export async function proxyOutcome(port: number, c: FuzzCase, ref: Reference): Promise<Outcome> {
  const { counts, readyCounts } = ref;
  const raw = await loggedIn(port);
  const messages: RawMessage[] = [];
  try {
    let want = 0;
    let wantReadies = 0;
    let readies = 0;
    for (let i = 0; i < c.steps.length && i < counts.length; i++) {
      if (raw.closed) break;
      write(raw, c.steps[i]);
      want += counts[i];
      wantReadies += readyCounts[i];
      const isLast = i === counts.length - 1; // PostgreSQL stopped after this step (the case's end, or it closed)
      const waitMs = isLast || endsAtFlushPoint(c.steps[i]) ? HANG_MS : QUIET_MS;
      while (messages.length < want) {
        // A reply that ended with as many ReadyForQuery as PostgreSQL's is complete, though it differs.
        const isAnswered =
          readyCounts[i] > 0 && readies >= wantReadies && messages[messages.length - 1]?.type === 'Z';
        const m = await next(raw, isAnswered ? GRACE_MS : waitMs);
        if (m === null) {
          const isOwed = isLast && endsAtFlushPoint(c.steps[i]); // else the proxy may hold replies (compare.ts)
          if (isOwed && !raw.closed && !isAnswered) return { messages, isClosed: false, isHung: true };
          break;
        }
        messages.push(m);
        if (m.type === 'Z') readies++;
      }
    }
    for (;;) {
      const m = await next(raw, GRACE_MS);
      if (m === null) break;
      messages.push(m);
    }
    if (ref.outcome.isClosed && !raw.closed) await raw.waitClosed(HANG_MS);
    return { messages, isClosed: raw.closed, isHung: false };
  } finally {
    raw.close();
  }
}

/**
 * How many of PostgreSQL's messages the proxy must give whatever the case's end: those answering the writes up to
 * the last one that ended at a flush point, before the last write PostgreSQL read.
 */
function mustAnswer(c: FuzzCase, ref: Reference): number {
  let n = 0;
  let sum = 0;
  for (let i = 0; i < ref.counts.length - 1; i++) {
    sum += ref.counts[i];
    if (endsAtFlushPoint(c.steps[i])) n = sum;
  }
  return n;
}

/** Null when a fresh client gets SELECT 1 through the proxy, else what it got. */
export async function servesFreshClient(port: number): Promise<string | null> {
  let raw: RawClient | null = null;
  try {
    raw = await loggedIn(port);
    const replies = await raw.query('SELECT 1 AS one', HANG_MS);
    const got = normalize({ messages: replies, isClosed: false, isHung: false }).join(' ');
    const want = 'RowDescription(one:23:0) DataRow(31) CommandComplete(SELECT 1) ReadyForQuery(I)';
    return got === want ? null : `a fresh client's SELECT 1 got: ${got}`;
  } catch (err) {
    return `a fresh client's SELECT 1 failed: ${(err as Error).message}`;
  } finally {
    raw?.close();
  }
}

export interface FuzzRun {
  cases: number;
  /** Case × target comparisons made. */
  compared: number;
  failures: FuzzFailure[];
}

/** Cases `from` … `from + count - 1` of `seed` against every target; `onFailure` hears each as it is found. */
export async function runFuzz(opts: {
  seed: number;
  count: number;
  from?: number;
  referencePort: number;
  targets: Target[];
  onFailure?: (failure: FuzzFailure) => void;
}): Promise<FuzzRun> {
  const failures: FuzzFailure[] = [];
  let compared = 0;
  const from = opts.from ?? 0;
  for (let index = from; index < from + opts.count; index++) {
    const refs = new Map<CaseProfile, { c: FuzzCase; ref: Reference }>();
    for (const target of opts.targets) {
      let made = refs.get(target.profile);
      if (made === undefined) {
        const generated = generateCase(opts.seed, index, target.profile);
        made = { c: generated, ref: await referenceOutcome(opts.referencePort, generated) };
        refs.set(target.profile, made);
      }
      const { c, ref } = made;
      if (!isCaseForTarget(c, target.kind)) continue;
      compared++;
      const got = await proxyOutcome(target.port, c, ref);
      const last = c.steps[ref.counts.length - 1];
      const diff =
        target.check === 'hangs'
          ? got.isHung
            ? 'no reply where PostgreSQL answered (hang)'
            : null
          : difference(ref.outcome, got, mustAnswer(c, ref), endsAtFlushPoint(last));
      const health = await servesFreshClient(target.port);
      const what = [diff, health].filter((x) => x !== null).join('\n');
      if (what !== '') {
        const failure = { target: target.name, fuzzCase: c, what };
        failures.push(failure);
        opts.onFailure?.(failure);
      }
    }
  }
  return { cases: opts.count, compared, failures };
}

/** A failure as text: the target, the difference, and the case (seed, number, messages). */
export function describeFailure(failure: FuzzFailure): string {
  return `target ${failure.target}: ${failure.what}\n${describeCase(failure.fuzzCase)}`;
}
