// One client session's logging: the lines of its life (connected, logged in, disconnected) are written through the
// proxy's logger with the session's fields (client id, then user and database) merged in, and the pino child logger
// that the session's parts log through (warnings, errors, the request paths' lines) is made the first time one of
// them logs, then kept. A child logger with its binding strings is about half a kilobyte, which thousands of idle
// clients would each keep for nothing.
import type { Logger } from 'pino';

type LifeLevel = 'debug' | 'info' | 'warn';

export class SessionLog {
  private child: Logger | null = null;
  private readonly base: Logger;
  private readonly client: number;
  private user = '';
  private database = '';

  constructor(base: Logger, client: number) {
    this.base = base;
    this.client = client;
  }

  /** The session's logger (made on first use): lines carry the client id, and user and database once logged in. */
  get log(): Logger {
    return (this.child ??= this.base.child(this.bindings()));
  }

  /** The client logged in as `user` to `database`: its lines say so from now on. */
  identify(user: string, database: string): void {
    this.user = user;
    this.database = database;
    this.child?.setBindings({ user, database });
  }

  /** Whether a line at `level` would be written (to skip building its fields). */
  isEnabled(level: LifeLevel): boolean {
    return (this.child ?? this.base).isLevelEnabled(level);
  }

  /**
   * A line of the session's life, with the same fields as the session's logger writes, without making that logger:
   * nothing at all is built when `level` is off.
   */
  line(level: LifeLevel, fields: Record<string, unknown>, msg: string): void {
    const child = this.child;
    if (child !== null) return child[level](fields, msg);
    const base = this.base;
    if (!base.isLevelEnabled(level)) return;
    base[level]({ ...this.bindings(), ...fields }, msg);
  }

  private bindings(): Record<string, unknown> {
    const { client, user, database } = this;
    return user === '' && database === '' ? { client } : { client, user, database };
  }
}
