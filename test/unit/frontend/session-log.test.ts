// SessionLog: a session's life lines go through the proxy's logger with the session's fields, and the child logger its
// parts log through is made only when one of them logs (idle-client memory), with the same fields either way.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { SessionLog } from '../../../src/frontend/session-log.js';

function capture(level = 'info'): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level, base: { app: 'shardgate' }, timestamp: false }, stream);
  const lines = (): Record<string, unknown>[] =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines };
}

describe('SessionLog', () => {
  it('writes life lines with the session fields without making a child logger', () => {
    const { logger, lines } = capture();
    const child = vi.spyOn(logger, 'child');
    const logs = new SessionLog(logger, 7);
    logs.line('info', { remote: '1.2.3.4:5' }, 'client connected');
    logs.identify('alice', 'app');
    logs.line('info', { remote: '1.2.3.4:5', mode: 'transaction' }, 'client logged in');
    logs.line('debug', { reason: 'x' }, 'not written at info');
    expect(child).not.toHaveBeenCalled();
    const out = lines();
    expect(out).toHaveLength(2);
    expect(Object.keys(out[0])).toEqual(['level', 'app', 'client', 'remote', 'msg']);
    expect(out[1]).toMatchObject({ client: 7, user: 'alice', database: 'app', mode: 'transaction' });
    expect(Object.keys(out[1])).toEqual([
      'level',
      'app',
      'client',
      'user',
      'database',
      'remote',
      'mode',
      'msg',
    ]);
  });

  it('builds nothing for a life line whose level is off', () => {
    const { logger } = capture('warn');
    const info = vi.spyOn(logger, 'info');
    const logs = new SessionLog(logger, 1);
    logs.line('info', { remote: 'r' }, 'client logged in');
    expect(info).not.toHaveBeenCalled();
    expect(logs.isEnabled('info')).toBe(false);
    expect(logs.isEnabled('warn')).toBe(true);
    logger.level = 'debug'; // the proxy's level changed (reload): life lines follow it
    expect(logs.isEnabled('info')).toBe(true);
  });

  it('makes the child logger once, on first use, with the same fields as the life lines', () => {
    const { logger, lines } = capture();
    const child = vi.spyOn(logger, 'child');
    const logs = new SessionLog(logger, 3);
    logs.identify('bob', 'db');
    logs.line('info', { remote: 'r' }, 'before');
    logs.log.warn({ code: '57014' }, 'a warning');
    expect(logs.log).toBe(logs.log);
    expect(child).toHaveBeenCalledTimes(1);
    logs.line('info', { remote: 'r' }, 'after'); // through the child now
    const [before, warning, after] = lines();
    expect(before).toMatchObject({ client: 3, user: 'bob', database: 'db', msg: 'before' });
    expect(warning).toMatchObject({
      client: 3,
      user: 'bob',
      database: 'db',
      code: '57014',
      msg: 'a warning',
    });
    expect(Object.keys(after)).toEqual(Object.keys(before));
  });

  it('gives a child made before login the user and database once the client logs in', () => {
    const { logger, lines } = capture();
    const logs = new SessionLog(logger, 9);
    logs.log.warn('during login');
    logs.identify('carol', 'app');
    logs.log.warn('after login');
    logs.line('info', {}, 'life line');
    const [during, after, life] = lines();
    expect(during).toMatchObject({ client: 9 });
    expect(during.user).toBeUndefined();
    expect(after).toMatchObject({ client: 9, user: 'carol', database: 'app' });
    expect(life).toMatchObject({ client: 9, user: 'carol', database: 'app' });
  });
});
