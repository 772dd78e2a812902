// ServerStatements (backend/server-statements.ts): a server connection's named statements in least-recently-used
// order, so prepared_statements_limit closes the ones used longest ago; `use` of the youngest moves nothing.
import { describe, expect, it } from 'vitest';
import {
  evictStatement,
  ServerStatements,
  type StatementRef,
} from '../../../src/backend/server-statements.js';

const kept: StatementRef = { isEvicted: false };

describe('ServerStatements', () => {
  it('closes the least recently used beyond the limit, whatever order add and use came in', () => {
    const s = new ServerStatements();
    s.add('a', kept);
    s.add('b', kept);
    s.add('c', kept);
    s.use('a'); // b, c, a
    s.use('a'); // the youngest again: nothing moves
    s.use('b'); // c, a, b
    expect(s.names()).toEqual(['c', 'a', 'b']);
    expect(s.takeVictims(2, 10)).toEqual(['c']);
    s.use('a'); // b, a
    expect(s.names()).toEqual(['b', 'a']);
  });

  it('forgets the youngest when it is deleted, cleared or taken, so a later use moves it again', () => {
    const s = new ServerStatements();
    s.add('a', kept);
    s.add('b', kept);
    s.delete('b'); // a
    s.add('c', kept);
    s.add('b', kept); // a, c, b
    s.use('a'); // c, b, a
    expect(s.names()).toEqual(['c', 'b', 'a']);
    s.clear();
    s.add('x', kept);
    s.add('y', kept);
    s.use('x');
    expect(s.names()).toEqual(['y', 'x']);
    expect(s.takeVictims(0, 1)).toEqual(['y']);
    expect(s.takeVictims(0, 1)).toEqual(['x']);
    s.add('y', kept);
    s.add('x', kept);
    s.use('y');
    expect(s.names()).toEqual(['x', 'y']);
  });

  it('takes statements the cache dropped at the old end even under the limit', () => {
    const s = new ServerStatements();
    s.add('old', { isEvicted: true });
    s.add('new', kept);
    expect(s.takeVictims(10, 10)).toEqual(['old']);
    expect(s.names()).toEqual(['new']);
  });
});

describe('ServerStatements: the check of the old end skipped when nothing changed', () => {
  it('finds a statement evicted after the last check, once its oldest was found kept', () => {
    const s = new ServerStatements();
    const a = { isEvicted: false };
    s.add('a', a);
    s.add('b', kept);
    expect(s.takeVictims(10, 10)).toEqual([]); // a kept: remembered as the oldest
    expect(s.takeVictims(10, 10)).toEqual([]); // nothing changed: not looked at again
    evictStatement(a);
    expect(s.takeVictims(10, 10)).toEqual(['a']);
    expect(s.names()).toEqual(['b']);
  });

  it('looks again when the oldest moves or goes, and when the limit is lowered', () => {
    const s = new ServerStatements();
    const b = { isEvicted: false };
    s.add('a', kept);
    s.add('b', b);
    s.add('c', kept);
    expect(s.takeVictims(10, 10)).toEqual([]); // a is the oldest
    s.use('a'); // b, c, a: b is the oldest now
    evictStatement(b);
    expect(s.takeVictims(10, 10)).toEqual(['b']);
    expect(s.takeVictims(10, 10)).toEqual([]); // c kept
    s.delete('c'); // a
    s.add('d', { isEvicted: true }); // a, d
    expect(s.takeVictims(10, 10)).toEqual([]); // a kept (d is not at the old end)
    s.add('a', kept); // d, a: the evicted one is the oldest now
    expect(s.takeVictims(10, 10)).toEqual(['d']);
    s.add('e', kept); // a, e
    expect(s.takeVictims(10, 10)).toEqual([]);
    expect(s.takeVictims(1, 10)).toEqual(['a']); // a lower limit: the old end goes
  });
});
