// Manual routing comments: shardgate's and PgDog's forms, only in block comments, never inside literals.
import { describe, expect, it } from 'vitest';
import { blockComments, commentHints } from '../../../src/router/comment-hints.js';

describe('commentHints', () => {
  it('reads PgDog forms', () => {
    expect(commentHints('/* pgdog_shard: 0 */ SELECT 1').shard).toBe(0);
    expect(commentHints('SELECT 1 /*pgdog_shard:12*/').shard).toBe(12);
    expect(commentHints('/* pgdog_sharding_key: 1234 */ SELECT 1').shardingKey).toBe('1234');
    expect(commentHints('/* pgdog_sharding_key: "us-east-1" */ SELECT 1').shardingKey).toBe('us-east-1');
    expect(commentHints("/* pgdog_sharding_key: 'a b' */ SELECT 1").shardingKey).toBe('a b');
  });

  it('reads shardgate forms', () => {
    expect(commentHints('/* shardgate: shard=2 */ SELECT 1')).toEqual({ shard: 2, shardingKey: null });
    expect(commentHints('/* shardgate: shard = 7 */ SELECT 1').shard).toBe(7);
    expect(commentHints('/* shardgate: sharding_key=42 */ SELECT 1').shardingKey).toBe('42');
  });

  it('ignores hints in literals, quoted names, dollar quotes and line comments', () => {
    expect(commentHints("SELECT '/* pgdog_shard: 1 */'").shard).toBeNull();
    expect(commentHints("SELECT E'\\' /* pgdog_shard: 1 */'").shard).toBeNull();
    expect(commentHints('SELECT 1 AS "/* pgdog_shard: 1 */"').shard).toBeNull();
    expect(commentHints('SELECT $x$ /* pgdog_shard: 1 */ $x$').shard).toBeNull();
    expect(commentHints('SELECT 1 -- /* pgdog_shard: 1 */').shard).toBeNull();
  });

  it('finds hints after parameters and inside nested comments', () => {
    expect(commentHints('SELECT $1 /* pgdog_shard: 4 */').shard).toBe(4);
    expect(commentHints('/* outer /* inner */ pgdog_shard: 5 */ SELECT 1').shard).toBe(5);
  });

  it('returns the shared empty result when there is nothing', () => {
    expect(commentHints('SELECT 1')).toEqual({ shard: null, shardingKey: null });
  });

  it('lists block comment bodies in a range', () => {
    expect(blockComments('/* a */ SELECT /* b */ 1', 0, 24)).toEqual([' a ', ' b ']);
    expect(blockComments('/* a */ SELECT /* b */ 1', 7, 24)).toEqual([' b ']);
  });
});
