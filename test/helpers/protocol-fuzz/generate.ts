// The protocol fuzzer's case generator: a seeded, deterministic sequence of frontend messages sent after a successful
// login — mostly valid-looking simple and extended traffic, with random mutations (wrong orders, unknown names,
// parameter and format mismatches, bad lengths, truncated frames, unknown types, COPY messages out of place, a second
// StartupMessage, Terminate mid-batch). Each frame keeps a readable description, so a failing case can be printed and
// turned into a regression test. Frames are built with the project's own writers (no codec of the fuzzer's own).
import { Frontend } from '../../../src/protocol/codes.js';
import { FLUSH, SYNC, TERMINATE, query, startupMessage } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { frame } from '../raw-client.js';
import { Rng } from '../rng.js';

/** One frontend message (or a mutated piece of one) and how to print it. */
export interface FuzzFrame {
  bytes: Buffer;
  text: string;
}

/** What a step waits for before the next step is written (on PostgreSQL; the proxy is then held to its count). */
export type StepWait = 'ready' | 'copyIn' | 'quiet';

/** Frames written in one go, then the replies read. */
export interface FuzzStep {
  frames: FuzzFrame[];
  wait: StepWait;
  /** ReadyForQuery replies expected when every frame is well formed (a hint for how long to wait, not a check). */
  readies: number;
}

/** What a case contains that a target may answer differently by design (see compare.ts). */
export interface CaseFeatures {
  /** A FunctionCall ('F') message: refused on a sharded database without a chosen shard (docs/sharding.md). */
  functionCall: boolean;
}

/**
 * What a case may contain: `full` — everything; `oneStatement` — each extended request one statement's
 * Parse/Bind/(Describe)/Execute/Sync (mutated parameters and formats), no random orders: what a sharded database runs
 * on one shard as PostgreSQL would (its batches of several statements are scripts, docs/sharding.md).
 */
export type CaseProfile = 'full' | 'oneStatement';

export interface FuzzCase {
  seed: number;
  index: number;
  profile: CaseProfile;
  steps: FuzzStep[];
  features: CaseFeatures;
}

/** A statement the extended protocol prepares: its text and its parameters' declared types (0: unspecified). */
interface Stmt {
  sql: string;
  params: number;
  types: number[];
}

const INT4 = 23;
const TEXT = 25;

/** Statements whose results do not depend on the data (the table fz exists on every server and is never read). */
export const EXTENDED_STATEMENTS: readonly Stmt[] = [
  { sql: 'SELECT 1 AS one', params: 0, types: [] },
  { sql: "SELECT 1 AS a, 'x'::text AS b, NULL::int AS c", params: 0, types: [] },
  { sql: 'SELECT g FROM generate_series(1, 5) AS g', params: 0, types: [] },
  { sql: 'SELECT $1::int AS p', params: 1, types: [] },
  { sql: 'SELECT $1 AS p', params: 1, types: [INT4] },
  { sql: 'SELECT $1::text AS t, $2::int AS i', params: 2, types: [TEXT, 0] },
  { sql: 'SELECT $1 AS untyped', params: 1, types: [] },
  { sql: 'SELECT 1/0 AS boom', params: 0, types: [] },
  { sql: 'SELEC 1', params: 0, types: [] },
  { sql: 'SELECT * FROM fz_missing', params: 0, types: [] },
  { sql: 'SELECT 1; SELECT 2', params: 0, types: [] },
  { sql: '', params: 0, types: [] },
  { sql: 'BEGIN', params: 0, types: [] },
  { sql: 'COMMIT', params: 0, types: [] },
  { sql: 'ROLLBACK', params: 0, types: [] },
  { sql: 'INSERT INTO fz (a, b) VALUES ($1, $2)', params: 2, types: [INT4, TEXT] },
  { sql: 'SHOW DateStyle', params: 0, types: [] },
  { sql: "SET application_name = 'fuzz'", params: 0, types: [] },
  { sql: "VALUES (1, $1::text), (2, 'two')", params: 1, types: [] },
];

/** Simple-protocol texts: single statements, scripts, errors mid-script, empty queries. */
export const SIMPLE_QUERIES: readonly string[] = [
  'SELECT 1 AS one',
  "SELECT 1 AS a, 'x'::text AS b, NULL::int AS c",
  'SELECT g FROM generate_series(1, 3) AS g',
  'SELECT 1/0',
  'SELEC 1',
  'SELECT * FROM fz_missing',
  '',
  ';',
  ' ; ; ',
  'SELECT 1; SELECT 2',
  'SELECT 1; SELEC 2; SELECT 3',
  'SELECT 1; SELECT 1/0; SELECT 3',
  'BEGIN; SELECT 1/0; COMMIT',
  'BEGIN; SELECT 1',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'BEGIN; COMMIT; SELECT 2',
  "INSERT INTO fz VALUES (1, 'a')",
  "INSERT INTO fz VALUES (1, 'a') RETURNING a",
  'SHOW DateStyle',
  "SET application_name = 'fuzz'",
  'COPY (SELECT g FROM generate_series(1, 3) AS g) TO STDOUT',
  'VALUES (1), (2)',
];

const COPY_STATEMENTS: readonly string[] = [
  'COPY fz FROM STDIN',
  'COPY fz (a, b) FROM STDIN (FORMAT csv)',
  'COPY fz (a) FROM STDIN',
];

function f(bytes: Buffer, text: string): FuzzFrame {
  return { bytes, text };
}

function quote(s: string): string {
  return JSON.stringify(s);
}

export function parseFrame(name: string, stmt: Stmt, types: number[] = stmt.types): FuzzFrame {
  const w = new MessageWriter().cstring(name).cstring(stmt.sql).int16(types.length);
  for (const t of types) w.int32(t);
  return f(w.frame(Frontend.Parse), `Parse(${quote(name)}, ${quote(stmt.sql)}, types=[${types.join(',')}])`);
}

/** A Bind parameter: null, text, or raw binary bytes. */
export type Param = null | { format: 0 | 1; value: Buffer };

function paramText(p: Param): string {
  if (p === null) return 'NULL';
  return p.format === 0 ? quote(p.value.toString()) : `bin(${p.value.toString('hex')})`;
}

export function bindFrame(
  portal: string,
  stmt: string,
  formats: number[],
  params: Param[],
  resultFormats: number[],
): FuzzFrame {
  const w = new MessageWriter().cstring(portal).cstring(stmt).int16(formats.length);
  for (const c of formats) w.int16(c);
  w.int16(params.length);
  for (const p of params) {
    if (p === null) w.int32(-1);
    else w.int32(p.value.length).bytes(p.value);
  }
  w.int16(resultFormats.length);
  for (const c of resultFormats) w.int16(c);
  return f(
    w.frame(Frontend.Bind),
    `Bind(${quote(portal)}, ${quote(stmt)}, formats=[${formats.join(',')}], params=[${params
      .map(paramText)
      .join(', ')}], results=[${resultFormats.join(',')}])`,
  );
}

export function describeFrame(kind: 'S' | 'P', name: string): FuzzFrame {
  const bytes = new MessageWriter().int8(kind.charCodeAt(0)).cstring(name).frame(Frontend.Describe);
  return f(bytes, `Describe(${kind}, ${quote(name)})`);
}

export function executeFrame(portal: string, maxRows: number): FuzzFrame {
  const bytes = new MessageWriter().cstring(portal).int32(maxRows).frame(Frontend.Execute);
  return f(bytes, `Execute(${quote(portal)}, ${maxRows})`);
}

export function closeFrame(kind: 'S' | 'P', name: string): FuzzFrame {
  const bytes = new MessageWriter().int8(kind.charCodeAt(0)).cstring(name).frame(Frontend.Close);
  return f(bytes, `Close(${kind}, ${quote(name)})`);
}

export const syncFrame = (): FuzzFrame => f(SYNC, 'Sync');
export const flushFrame = (): FuzzFrame => f(FLUSH, 'Flush');
export const terminateFrame = (): FuzzFrame => f(TERMINATE, 'Terminate');
export const queryFrame = (sql: string): FuzzFrame => f(query(sql), `Query(${quote(sql)})`);

export function copyDataFrame(data: string): FuzzFrame {
  return f(frame('d', data), `CopyData(${quote(data)})`);
}
export const copyDoneFrame = (): FuzzFrame => f(frame('c'), 'CopyDone');
export function copyFailFrame(reason: string): FuzzFrame {
  return f(frame('f', `${reason}\0`), `CopyFail(${quote(reason)})`);
}

/** FunctionCall of int4pl (oid 177) with text or binary arguments. */
export function functionCallFrame(args: Param[], argFormats: number[], resultFormat: number): FuzzFrame {
  const w = new MessageWriter().int32(177).int16(argFormats.length);
  for (const c of argFormats) w.int16(c);
  w.int16(args.length);
  for (const a of args) {
    if (a === null) w.int32(-1);
    else w.int32(a.value.length).bytes(a.value);
  }
  w.int16(resultFormat);
  return f(
    w.frame(Frontend.FunctionCall),
    `FunctionCall(int4pl, formats=[${argFormats.join(',')}], args=[${args.map(paramText).join(', ')}], result=${resultFormat})`,
  );
}

/** A frame with its length word replaced (too short, too long, negative, huge). */
export function withLength(fr: FuzzFrame, length: number): FuzzFrame {
  const bytes = Buffer.from(fr.bytes);
  bytes.writeInt32BE(length, 1);
  return f(bytes, `${fr.text} [length ${fr.bytes.readInt32BE(1)} → ${length}]`);
}

/** The first `n` bytes of a frame. */
export function truncated(fr: FuzzFrame, n: number): FuzzFrame {
  return f(fr.bytes.subarray(0, n), `${fr.text} [first ${n} of ${fr.bytes.length} bytes]`);
}

function textParam(s: string): Param {
  return { format: 0, value: Buffer.from(s) };
}

function int4Binary(n: number): Param {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return { format: 1, value: b };
}

/** The extended-protocol session model: names prepared and bound so far in this case (as the client believes). */
interface ExtendedModel {
  statements: Map<string, Stmt>;
  portals: string[];
}

const STATEMENT_NAMES = ['', 's1', 's2'];
const PORTAL_NAMES = ['', 'p1'];

/** Bind parameters for `stmt`: usually right, sometimes the wrong count, formats, types or bytes. */
function bindFor(rng: Rng, portal: string, stmtName: string, stmt: Stmt | undefined): FuzzFrame {
  const n = stmt?.params ?? rng.int(0, 2);
  let count = n;
  if (rng.chance(0.08)) count = Math.max(0, n + rng.pick([-1, 1, 2]));
  const params: Param[] = [];
  let isBinary = false;
  for (let i = 0; i < count; i++) {
    const r = rng.next();
    if (r < 0.15) params.push(null);
    else if (r < 0.3) {
      params.push(int4Binary(rng.int(-5, 1000)));
      isBinary = true;
    } else if (r < 0.36) {
      params.push({ format: 1, value: Buffer.from([0, 1, 2]) });
      isBinary = true;
    } else if (r < 0.45) params.push(textParam('abc'));
    else params.push(textParam(String(rng.int(-5, 1000))));
  }
  let formats: number[];
  if (!isBinary) formats = rng.chance(0.8) ? [] : [0];
  else if (count > 1 && rng.chance(0.3)) formats = [1];
  else formats = params.map((p) => (p !== null && p.format === 1 ? 1 : 0));
  if (rng.chance(0.06)) formats = [...formats, 0];
  if (rng.chance(0.04)) formats = [7];
  let results: number[] = rng.pick([[], [], [], [0], [1]]);
  if (rng.chance(0.04)) results = [0, 1, 0];
  if (rng.chance(0.03)) results = [3];
  return bindFrame(portal, stmtName, formats, params, results);
}

/** One extended-protocol message chosen against the model (mostly valid, sometimes not). */
function extendedMessage(rng: Rng, model: ExtendedModel): FuzzFrame {
  const r = rng.next();
  const knownStmt = (): string =>
    model.statements.size > 0 && rng.chance(0.85)
      ? rng.pick([...model.statements.keys()])
      : rng.pick(['', 'zz']);
  const knownPortal = (): string =>
    model.portals.length > 0 && rng.chance(0.85) ? rng.pick(model.portals) : rng.pick(['', 'pz']);
  if (r < 0.22) {
    const name = rng.pick(STATEMENT_NAMES);
    const stmt = rng.pick(EXTENDED_STATEMENTS);
    model.statements.set(name, stmt);
    const types = rng.chance(0.05) ? [999999] : stmt.types;
    return parseFrame(name, stmt, types);
  }
  if (r < 0.42) {
    const stmtName = knownStmt();
    const portal = rng.pick(PORTAL_NAMES);
    if (!model.portals.includes(portal)) model.portals.push(portal);
    return bindFor(rng, portal, stmtName, model.statements.get(stmtName));
  }
  if (r < 0.52) return rng.chance(0.5) ? describeFrame('S', knownStmt()) : describeFrame('P', knownPortal());
  if (r < 0.72) return executeFrame(knownPortal(), rng.pick([0, 0, 0, 1, 2, 10, -1]));
  if (r < 0.8) return rng.chance(0.5) ? closeFrame('S', knownStmt()) : closeFrame('P', knownPortal());
  if (r < 0.9) return syncFrame();
  return flushFrame();
}

function extendedStep(rng: Rng, model: ExtendedModel, profile: CaseProfile): FuzzStep {
  const frames: FuzzFrame[] = [];
  const n = profile === 'full' ? rng.int(1, 8) : 0;
  if (profile === 'oneStatement' || rng.chance(0.6)) {
    // The common shape first: Parse / Bind / Describe / Execute of one statement.
    const name = rng.pick(STATEMENT_NAMES);
    const stmt = rng.pick(EXTENDED_STATEMENTS);
    model.statements.set(name, stmt);
    frames.push(parseFrame(name, stmt));
    const portal = rng.pick(PORTAL_NAMES);
    if (!model.portals.includes(portal)) model.portals.push(portal);
    frames.push(bindFor(rng, portal, name, stmt));
    if (rng.chance(0.5)) frames.push(describeFrame('P', portal));
    frames.push(executeFrame(portal, rng.pick([0, 0, 0, 2])));
  }
  for (let i = 0; i < n; i++) frames.push(extendedMessage(rng, model));
  const end = rng.next();
  if (end < 0.8 || profile === 'oneStatement') frames.push(syncFrame());
  else if (end < 0.9) frames.push(flushFrame());
  return { frames, wait: 'ready', readies: frames.filter((x) => x.text === 'Sync').length };
}

function simpleStep(rng: Rng): FuzzStep {
  const frames = [queryFrame(rng.pick(SIMPLE_QUERIES))];
  if (rng.chance(0.3)) frames.push(queryFrame(rng.pick(SIMPLE_QUERIES)));
  return { frames, wait: 'ready', readies: frames.length };
}

/** COPY … FROM STDIN: the statement (waiting for CopyInResponse), then data, mutated, and an ending. */
function copySteps(rng: Rng): FuzzStep[] {
  const sql = rng.pick(COPY_STATEMENTS);
  const isCsv = sql.includes('csv');
  const oneColumn = sql.includes('(a)');
  const frames: FuzzFrame[] = [];
  const rows = rng.int(0, 4);
  for (let i = 0; i < rows; i++) {
    const a = rng.chance(0.1) ? 'x' : String(rng.int(0, 99));
    let row = oneColumn ? `${a}\n` : isCsv ? `${a},"v${i}"\n` : `${a}\tv${i}\n`;
    if (rng.chance(0.1)) row = row.slice(0, -1); // a row split over two CopyData
    if (rng.chance(0.05)) row = `${a}\t${a}\t${a}\n`; // too many columns
    frames.push(copyDataFrame(row));
  }
  const end = rng.next();
  if (end < 0.6) frames.push(copyDoneFrame());
  else if (end < 0.75) frames.push(copyFailFrame('client gave up'));
  else if (end < 0.82) frames.push(syncFrame(), copyDoneFrame());
  else if (end < 0.88) frames.push(flushFrame(), copyDoneFrame());
  else if (end < 0.94) frames.push(queryFrame('SELECT 1'));
  else frames.push(executeFrame('', 0), syncFrame());
  return [
    { frames: [queryFrame(sql)], wait: 'copyIn', readies: 0 },
    { frames, wait: 'ready', readies: 1 },
  ];
}

/** CopyData / CopyDone / CopyFail outside COPY, then a Sync or a Query. */
function strayCopyStep(rng: Rng): FuzzStep {
  const frames = [rng.pick([copyDataFrame('1\ta\n'), copyDoneFrame(), copyFailFrame('nope')])];
  if (rng.chance(0.5)) frames.push(syncFrame());
  else frames.push(queryFrame('SELECT 1 AS one'));
  return { frames, wait: 'ready', readies: 1 };
}

function functionCallStep(rng: Rng): FuzzStep {
  const r = rng.next();
  let call: FuzzFrame;
  if (r < 0.5) call = functionCallFrame([textParam('1'), textParam('2')], [], 0);
  else if (r < 0.7) call = functionCallFrame([int4Binary(1), int4Binary(2)], [1], 1);
  else if (r < 0.85) call = functionCallFrame([textParam('1')], [], 0);
  else call = functionCallFrame([null, textParam('2')], [0, 0], 0);
  return { frames: [call], wait: 'ready', readies: 1 };
}

/** Things a client must not send after login, and broken frames. */
function violationStep(rng: Rng, model: ExtendedModel, profile: CaseProfile): FuzzStep {
  const isFull = profile === 'full';
  const base = !isFull || rng.chance(0.5) ? queryFrame('SELECT 1 AS one') : extendedMessage(rng, model);
  const r = rng.next();
  let bad: FuzzFrame;
  if (r < 0.12) bad = f(startupMessage({ user: 'app', database: 'app' }), 'StartupMessage(user=app)');
  else if (r < 0.22) bad = f(frame('p', 'secret\0'), 'PasswordMessage("secret")');
  else if (r < 0.34) {
    const type = rng.pick(['y', 'A', '?', '\u0001', 'z', 'T']);
    bad = f(frame(type, 'whatever'), `Frame(type=0x${type.charCodeAt(0).toString(16)}, "whatever")`);
  } else if (r < 0.46)
    bad = withLength(base, base.bytes.length - 1 - rng.int(1, 3)); // too short
  else if (r < 0.56) bad = withLength(base, rng.pick([0, 1, 3, -1, -100]));
  else if (r < 0.62) bad = withLength(base, 0x7fffffff);
  else if (r < 0.7)
    bad = withLength(base, base.bytes.length - 1 + rng.int(1, 6)); // too long: eats what follows
  else if (r < 0.8) bad = truncated(base, rng.int(1, base.bytes.length - 1));
  else bad = terminateFrame();
  const frames: FuzzFrame[] = [];
  if (isFull && rng.chance(0.5)) frames.push(extendedMessage(rng, model));
  frames.push(bad);
  frames.push(rng.chance(0.5) ? syncFrame() : queryFrame('SELECT 2 AS two'));
  return { frames, wait: 'ready', readies: 1 };
}

/** The case `index` of `seed`: 1–4 steps, each a kind of traffic. */
export function generateCase(seed: number, index: number, profile: CaseProfile = 'full'): FuzzCase {
  const rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const model: ExtendedModel = { statements: new Map(), portals: [] };
  const steps: FuzzStep[] = [];
  const features: CaseFeatures = { functionCall: false };
  const count = rng.int(1, 4);
  for (let i = 0; i < count; i++) {
    const r = rng.next();
    if (r < 0.35) steps.push(extendedStep(rng, model, profile));
    else if (r < 0.55) steps.push(simpleStep(rng));
    else if (r < 0.65) steps.push(...copySteps(rng));
    else if (r < 0.72) steps.push(strayCopyStep(rng));
    else if (r < 0.78) {
      steps.push(functionCallStep(rng));
      features.functionCall = true;
    } else steps.push(violationStep(rng, model, profile));
  }
  return { seed, index, profile, steps, features };
}

/** The case as text: one line per frame, steps numbered. */
export function describeCase(c: FuzzCase): string {
  const lines = [`seed ${c.seed}, case ${c.index} (profile ${c.profile}):`];
  c.steps.forEach((s, i) => {
    lines.push(`  step ${i + 1} (then wait: ${s.wait})`);
    for (const fr of s.frames) lines.push(`    ${fr.text}`);
  });
  return lines.join('\n');
}
