// What a shard joining a sharded session's transaction block late runs first (block-replay.ts): BEGIN with its
// options, SET LOCAL, savepoints folded by RELEASE / ROLLBACK TO, the characteristics AND CHAIN keeps.
import { describe, expect, it } from 'vitest';
import { BlockReplay } from '../../../src/txn/block-replay.js';

/** The statements of `joinSql()`, trimmed. */
function replay(scope: BlockReplay): string[] {
  return scope
    .joinSql()
    .split('\n;')
    .filter((s) => s !== '');
}

function run(scope: BlockReplay, ...statements: Parameters<BlockReplay['expect']>[0][]): void {
  for (const s of statements) {
    scope.expect(s);
    scope.confirm();
  }
}

describe('BlockReplay', () => {
  it('opens on BEGIN and replays it with its options', () => {
    const scope = new BlockReplay();
    expect(replay(scope)).toEqual([]);
    scope.start('BEGIN ISOLATION LEVEL REPEATABLE READ');
    expect(replay(scope)).toEqual(['BEGIN ISOLATION LEVEL REPEATABLE READ']);
    run(scope, { kind: 'setting', text: "SET LOCAL statement_timeout = '5s'" });
    expect(replay(scope)).toEqual([
      'BEGIN ISOLATION LEVEL REPEATABLE READ',
      "SET LOCAL statement_timeout = '5s'",
    ]);
    scope.clear();
    expect(replay(scope)).toEqual([]);
  });

  it('keeps a statement only once its request succeeded', () => {
    const scope = new BlockReplay();
    scope.start('BEGIN');
    scope.expect({ kind: 'setting', text: 'SET LOCAL work_mem = 1' });
    scope.dropPending();
    scope.confirm();
    expect(replay(scope)).toEqual(['BEGIN']);
  });

  it('folds savepoints: ROLLBACK TO drops what came after, RELEASE drops the savepoint and keeps the effects', () => {
    const scope = new BlockReplay();
    scope.start('BEGIN');
    run(
      scope,
      { kind: 'savepoint', action: 'savepoint', name: 'a' },
      { kind: 'setting', text: 'SET LOCAL x.y = 1' },
      { kind: 'savepoint', action: 'savepoint', name: 'b' },
      { kind: 'setting', text: 'SET LOCAL x.y = 2' },
    );
    expect(replay(scope)).toEqual([
      'BEGIN',
      'SAVEPOINT "a"',
      'SET LOCAL x.y = 1',
      'SAVEPOINT "b"',
      'SET LOCAL x.y = 2',
    ]);
    run(scope, { kind: 'savepoint', action: 'rollback_to', name: 'b' });
    expect(replay(scope)).toEqual(['BEGIN', 'SAVEPOINT "a"', 'SET LOCAL x.y = 1', 'SAVEPOINT "b"']);
    run(scope, { kind: 'savepoint', action: 'release', name: 'a' });
    expect(replay(scope)).toEqual(['BEGIN', 'SET LOCAL x.y = 1']);
  });

  it('stays short under an ORM opening and releasing savepoints in a loop', () => {
    const scope = new BlockReplay();
    scope.start('BEGIN');
    for (let i = 0; i < 5000; i++) {
      run(
        scope,
        { kind: 'savepoint', action: 'savepoint', name: `sp${i}` },
        {
          kind: 'savepoint',
          action: 'release',
          name: `sp${i}`,
        },
      );
    }
    expect(replay(scope)).toEqual(['BEGIN']);
    expect(scope.canJoin).toBe(true);
  });

  it('quotes savepoint names (keywords and mixed case stay names)', () => {
    const scope = new BlockReplay();
    scope.start('BEGIN');
    run(scope, { kind: 'savepoint', action: 'savepoint', name: 'User"s' });
    expect(replay(scope)).toEqual(['BEGIN', 'SAVEPOINT "User""s"']);
  });

  it('AND CHAIN keeps the BEGIN', () => {
    const scope = new BlockReplay();
    scope.start('START TRANSACTION READ ONLY');
    run(scope, { kind: 'setting', text: 'SET LOCAL a.b = 1' });
    scope.chain();
    expect(replay(scope)).toEqual(['START TRANSACTION READ ONLY']);
  });

  it('AND CHAIN keeps the same characteristics (SET TRANSACTION too), not savepoints or SET LOCAL', () => {
    const scope = new BlockReplay();
    scope.start('BEGIN ISOLATION LEVEL SERIALIZABLE');
    run(scope, { kind: 'setting', text: 'SET TRANSACTION READ ONLY', isCharacteristic: true });
    run(scope, { kind: 'savepoint', action: 'savepoint', name: 'a' });
    run(scope, { kind: 'setting', text: 'SET LOCAL a.b = 1' });
    scope.chain();
    expect(replay(scope)).toEqual(['BEGIN ISOLATION LEVEL SERIALIZABLE', 'SET TRANSACTION READ ONLY']);
  });

  it('refuses joiners past its bound', () => {
    const scope = new BlockReplay();
    scope.start('BEGIN');
    for (let i = 0; i < 999; i++) run(scope, { kind: 'setting', text: `SET LOCAL x.y = ${i}` });
    expect(scope.canJoin).toBe(true);
    run(scope, { kind: 'setting', text: 'SET LOCAL x.y = 1000' });
    expect(scope.canJoin).toBe(false);
  });
});
