// The admin console of one logged-in admin client: simple-protocol queries in, result sets out. Requests are answered
// in order, one at a time (PAUSE may wait); the extended protocol is refused with an error, then skipped to Sync.
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { Backend, Frontend } from '../protocol/codes.js';
import {
  backendKeyData,
  commandComplete,
  errorResponse,
  parameterStatus,
  READY_IDLE,
} from '../protocol/messages.js';
import { VERSION } from '../version.js';
import { ban, healthcheck, showBans, unban } from './bans.js';
import { ADMIN_COMMANDS, parseAdminQuery, type AdminCommand } from './commands.js';
import type { AdminConsoleHandle, AdminContext, AdminIo } from './context.js';
import { encodeResultSet, type ResultSet } from './result-set.js';
import { showClients } from './show-clients.js';
import { showConfig } from './show-config.js';
import { showDatabases } from './show-databases.js';
import { showPools } from './show-pools.js';
import { showReplication } from './show-replication.js';
import { showServers } from './show-servers.js';
import { showStats } from './show-stats.js';
import { recoverNow, showTransactions } from './show-transactions.js';
import { showVersion } from './show-version.js';

const EMPTY_QUERY_RESPONSE = Buffer.from([Backend.EmptyQueryResponse, 0, 0, 0, 4]);

const SHOW: Partial<Record<AdminCommand, (ctx: AdminContext) => ResultSet | Promise<ResultSet>>> = {
  'SHOW POOLS': showPools,
  'SHOW CLIENTS': showClients,
  'SHOW SERVERS': showServers,
  'SHOW DATABASES': showDatabases,
  'SHOW STATS': showStats,
  'SHOW CONFIG': showConfig,
  'SHOW TRANSACTIONS': showTransactions,
  'SHOW VERSION': showVersion,
  'SHOW BANS': showBans,
  'SHOW REPLICATION': showReplication,
};

/** Messages of the extended protocol (and function calls): not part of the console's language. */
const EXTENDED: ReadonlySet<number> = new Set([
  Frontend.Parse,
  Frontend.Bind,
  Frontend.Describe,
  Frontend.Execute,
  Frontend.Close,
]);

/** What an admin client is told at login: enough parameters for psql and drivers, its cancel key, ready. */
export function adminLoginReplies(pid: number, secret: number): Buffer {
  const params: [string, string][] = [
    ['server_version', `16.0 (shardgate ${VERSION})`],
    ['server_encoding', 'UTF8'],
    ['client_encoding', 'UTF8'],
    ['DateStyle', 'ISO, MDY'],
    ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'],
    ['application_name', 'shardgate admin'],
  ];
  return Buffer.concat([
    ...params.map(([k, v]) => parameterStatus(k, v)),
    backendKeyData(pid, secret),
    READY_IDLE,
  ]);
}

export function unknownCommand(text: string): PgError {
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  return new PgError(
    'ERROR',
    SqlState.SyntaxError,
    `unknown admin command: "${shown}"`,
    undefined,
    `The admin console knows: ${ADMIN_COMMANDS.join(', ')}.`,
  );
}

function extendedProtocolRefused(): PgError {
  return PgError.featureNotSupported(
    'the admin console accepts only simple queries; the extended protocol (prepared statements) is not supported',
    'Use psql, or a driver in simple-query mode (e.g. node-postgres without parameters, psycopg with autocommit).',
  );
}

function notice(message: string): Buffer {
  return errorResponse(
    { severity: 'NOTICE', code: SqlState.SuccessfulCompletion, message },
    Backend.NoticeResponse,
  );
}

export class AdminConsole implements AdminConsoleHandle {
  private readonly ctx: AdminContext;
  private readonly io: AdminIo;
  private readonly log: Logger;
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private isSkippingToSync = false;

  constructor(ctx: AdminContext, io: AdminIo, log: Logger) {
    this.ctx = ctx;
    this.io = io;
    this.log = log;
  }

  get isBusy(): boolean {
    return this.pending > 0;
  }

  onFrame(type: number, frame: Buffer): void {
    if (type === Frontend.Terminate) return this.io.close();
    if (type === Frontend.Query) {
      const end = frame.indexOf(0, 5);
      const sql = frame.toString('utf8', 5, end < 0 ? frame.length : end);
      return this.enqueue(() => this.runQuery(sql));
    }
    if (type === Frontend.Sync) {
      return this.enqueue(async () => {
        this.isSkippingToSync = false;
        this.io.write(READY_IDLE);
      });
    }
    if (type === Frontend.FunctionCall) {
      return this.enqueue(async () =>
        this.io.write(Buffer.concat([extendedProtocolRefused().toBuffer(), READY_IDLE])),
      );
    }
    if (EXTENDED.has(type)) {
      return this.enqueue(async () => {
        if (this.isSkippingToSync) return;
        this.isSkippingToSync = true;
        this.io.write(extendedProtocolRefused().toBuffer());
      });
    }
    // Flush, CopyData/CopyDone/CopyFail: nothing to answer.
  }

  private enqueue(task: () => Promise<void>): void {
    this.pending++;
    this.queue = this.queue
      .then(task)
      .catch((err: unknown) => {
        this.log.error({ err }, 'admin command failed');
        this.io.write(Buffer.concat([PgError.internal((err as Error).message).toBuffer(), READY_IDLE]));
      })
      .finally(() => this.pending--);
  }

  private async runQuery(sql: string): Promise<void> {
    const statements = parseAdminQuery(sql);
    if (statements.length === 0) {
      this.io.write(Buffer.concat([EMPTY_QUERY_RESPONSE, READY_IDLE]));
      return;
    }
    for (const statement of statements) {
      if (statement.kind === 'unknown') {
        this.io.write(unknownCommand(statement.text).toBuffer());
        break;
      }
      if (!(await this.run(statement.command, statement.poolId ?? null))) break;
      if (statement.command === 'SHUTDOWN') {
        this.io.write(READY_IDLE);
        this.ctx.shutdown();
        return;
      }
    }
    this.io.write(READY_IDLE);
  }

  /** Run one command and write its reply; false when it answered with an error. */
  private async run(command: AdminCommand, poolId: number | null): Promise<boolean> {
    const show = SHOW[command];
    if (show !== undefined) {
      this.io.write(encodeResultSet(await show(this.ctx)));
      return true;
    }
    switch (command) {
      case 'RELOAD':
        return this.reload();
      case 'PAUSE':
        this.log.info('admin: PAUSE (waiting for server connections in use to be returned)');
        await this.ctx.pause();
        this.io.write(commandComplete('PAUSE'));
        return true;
      case 'RESUME':
        this.ctx.resume();
        this.io.write(commandComplete('RESUME'));
        return true;
      case 'BAN':
      case 'UNBAN': {
        const log = (msg: string): void => this.log.info(msg);
        const outcome = command === 'BAN' ? ban(this.ctx, poolId, log) : unban(this.ctx, poolId, log);
        if (outcome instanceof PgError) return this.fail(outcome);
        this.io.write(commandComplete(command));
        return true;
      }
      case 'HEALTHCHECK': {
        const outcome = await healthcheck(this.ctx, poolId);
        if (outcome instanceof PgError) return this.fail(outcome);
        this.io.write(encodeResultSet(outcome, 'HEALTHCHECK'));
        return true;
      }
      case 'RECOVER': {
        this.log.info('admin: RECOVER (a recovery pass of two-phase commits now)');
        const outcome = await recoverNow(this.ctx);
        if (outcome instanceof PgError) return this.fail(outcome);
        this.io.write(encodeResultSet(outcome, 'RECOVER'));
        return true;
      }
      case 'SHUTDOWN':
        this.log.info('admin: SHUTDOWN');
        this.io.write(commandComplete('SHUTDOWN'));
        return true;
      default:
        this.io.write(unknownCommand(command).toBuffer());
        return false;
    }
  }

  private fail(err: PgError): false {
    this.io.write(err.toBuffer());
    return false;
  }

  private reload(): boolean {
    const outcome = this.ctx.reload();
    if (!outcome.ok) {
      const err = new PgError(
        'ERROR',
        SqlState.ConfigFileError,
        `configuration reload refused: ${outcome.error}`,
        'The running configuration is unchanged.',
      );
      this.io.write(err.toBuffer());
      return false;
    }
    const out: Buffer[] = [];
    if (outcome.changed.length > 0) out.push(notice(`applied: ${outcome.changed.join('; ')}`));
    for (const item of outcome.needsRestart)
      out.push(notice(`needs a restart (ignored until then): ${item}`));
    out.push(commandComplete('RELOAD'));
    this.io.write(Buffer.concat(out));
    return true;
  }
}
