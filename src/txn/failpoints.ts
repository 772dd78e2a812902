// Test-only failure injection for the 2PC path. Off unless SHARDGATE_FAILPOINTS is set (or a test sets one in
// process): `SHARDGATE_FAILPOINTS="after_decision=kill"` makes the process SIGKILL itself right after the commit
// decision is durable (a real kill -9: no cleanup, no flush). Actions: kill, stop (SIGSTOP itself: a host that
// vanishes without closing its sockets), sleep:<ms> (delay, e.g. to stop a shard between the phases), and in-process
// `call` hooks. Checked only at 2PC steps. `mid_prepare` / `mid_commit_prepared` make the step send to one shard
// first and the rest after the failpoint (only while set: the normal path sends to all shards at once).

import process from 'node:process';

export type FailpointName =
  | 'before_prepare'
  | 'mid_prepare'
  | 'after_prepare'
  | 'after_decision_row'
  | 'after_decision'
  | 'mid_commit_prepared'
  | 'before_commit_prepared';
export type FailpointAction =
  | { kind: 'kill' }
  | { kind: 'stop' }
  | { kind: 'sleep'; ms: number }
  /** In-process tests only: run `fn` (e.g. stop a shard) and continue when it resolves. */
  | { kind: 'call'; fn: () => Promise<void> };

const active = new Map<FailpointName, FailpointAction>();
const NAMES: readonly FailpointName[] = [
  'before_prepare',
  'mid_prepare',
  'after_prepare',
  'after_decision_row',
  'after_decision',
  'mid_commit_prepared',
  'before_commit_prepared',
];

function parseAction(text: string): FailpointAction | null {
  if (text === 'kill') return { kind: 'kill' };
  if (text === 'stop') return { kind: 'stop' };
  const m = /^sleep:(\d+)$/.exec(text);
  return m ? { kind: 'sleep', ms: Number(m[1]) } : null;
}

/** Read SHARDGATE_FAILPOINTS (`name=action,name=action`); unknown names or actions throw (a test typo must not pass). */
export function loadFailpointsFromEnv(env: NodeJS.ProcessEnv = process.env): void {
  const spec = env.SHARDGATE_FAILPOINTS;
  if (spec === undefined || spec === '') return;
  for (const item of spec.split(',')) {
    const [name, actionText] = item.split('=');
    const action = parseAction(actionText ?? '');
    if (!NAMES.includes(name as FailpointName) || action === null)
      throw new Error(`SHARDGATE_FAILPOINTS: cannot understand "${item}"`);
    active.set(name as FailpointName, action);
  }
}

export function setFailpoint(name: FailpointName, action: FailpointAction | null): void {
  if (action === null) active.delete(name);
  else active.set(name, action);
}

export function clearFailpoints(): void {
  active.clear();
}

/** Whether the failpoint `name` is set (a step that splits its sends around it asks first). */
export function isFailpointSet(name: FailpointName): boolean {
  return active.size > 0 && active.has(name);
}

/** Run the failpoint `name` if set. Costs one size check when none is set. */
export async function failpoint(name: FailpointName): Promise<void> {
  if (active.size === 0) return;
  const action = active.get(name);
  if (action === undefined) return;
  if (action.kind === 'call') {
    await action.fn();
    return;
  }
  if (action.kind === 'sleep') {
    await new Promise((r) => setTimeout(r, action.ms));
    return;
  }
  if (action.kind === 'stop') {
    process.kill(process.pid, 'SIGSTOP');
    return; // continued (SIGCONT): go on as if nothing happened
  }
  process.kill(process.pid, 'SIGKILL');
}
