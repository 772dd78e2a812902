// Writes the proxy cannot place or count (issue 11, contract section D), on 2 real shards: refused with 0A000 and a
// hint, nothing written anywhere, the connection still usable — unless routed by hand, then run on that one shard
// (and counted as a write there). CALL of a procedure, a DO block touching the sharded table, a FunctionCall ('F')
// message, the client's own PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED naming the proxy's GID prefix
// `sg_` (refused even under manual routing; other prefixes work there), large-object functions, COPY FROM a program
// or a server file.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, type TestProxy } from '../helpers/proxy.js';
import { firstError, type RawClient } from '../helpers/raw-client.js';
import { directShardClients, idOn } from '../helpers/sharding.js';
import {
  BOOM_TRIGGER_SQL,
  countOn,
  errorOf,
  expectNothingPrepared,
  functionCallFrame,
  kinds,
  MATRIX_TABLES_SQL,
  NOTE_IT_SQL,
  notesOn,
  preparedOn,
  proxyClient,
  rawSession,
  startAtomicityProxy,
  statusOf,
  tagsOf,
  usersOn,
} from '../helpers/write-atomicity.js';

/**
 * The SQLSTATE for the client's own two-phase commands naming the proxy's GID prefix: 42939 (reserved_name), as
 * PostgreSQL answers for names it reserves (the id is refused even though the statement itself could be routed).
 */
const PROXY_GID_REFUSAL = '42939';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let c: pg.Client;
let base = 0;

function idsForTest(): { a: number; b: number } {
  base += 1_000;
  return { a: idOn(0, base), b: idOn(1, base) };
}

/**
 * Refused by the proxy: 0A000 with a hint, and the connection goes on. Soft checks: the test goes on to check what
 * was written anyway (the report should show both).
 */
async function expectRefused(err: pg.DatabaseError | null): Promise<void> {
  expect.soft(err?.code).toBe('0A000');
  expect.soft(err?.hint ?? '').not.toBe('');
  expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startAtomicityProxy(cluster, 'wm_refuse');
  direct = await directShardClients(cluster);
  const setup = await proxyClient(proxy);
  await setup.query(MATRIX_TABLES_SQL);
  await setup.query(NOTE_IT_SQL);
  await setup.query(`create procedure note_proc(t text) language plpgsql as $$
    begin insert into notes (body) values (t); end $$`);
  await setup.end();
  await direct[1].query(BOOM_TRIGGER_SQL);
});

beforeEach(async () => {
  c = await proxyClient(proxy);
});

afterEach(async () => {
  await c.end().catch(() => undefined);
  await expectNothingPrepared(direct);
});

afterAll(async () => {
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('D. refused (0A000 with a hint), nothing written anywhere, the connection keeps working', () => {
  it('D1 CALL of a procedure without a routing hint', async () => {
    await expectRefused(await errorOf(c.query("call note_proc('d1')")));
    for (const d of direct) expect(await notesOn(d, 'd1')).toBe(0);
  });

  it('D1 CALL with /* shardgate: shard=0 */ runs on shard 0 only', async () => {
    await c.query("/* shardgate: shard=0 */ call note_proc('d1-hinted')");
    expect(await notesOn(direct[0], 'd1-hinted')).toBe(1);
    expect(await notesOn(direct[1], 'd1-hinted')).toBe(0);
  });

  it('D2 a DO block that touches the sharded users table, without a hint', async () => {
    const { a } = idsForTest();
    await expectRefused(
      await errorOf(c.query(`do $$ begin insert into users (id, name) values (${a}, 'd2'); end $$`)),
    );
    for (const d of direct) expect(await usersOn(d, [a])).toBe(0);
  });

  describe('D3 FunctionCall (F message)', () => {
    let raw: RawClient;
    let noteItOid: number;
    beforeEach(async () => {
      raw = await rawSession(proxy.port);
      // Shard 0's OID: the call is meant for shard 0 (each shard gave the function its own OID).
      noteItOid = await countOn(direct[0], "select 'note_it'::regproc::oid as n");
    });
    afterEach(() => raw.close());

    it('without a routing setting: 0A000, nothing written, the session goes on', async () => {
      raw.write(functionCallFrame(noteItOid, ['d3']));
      const reply = await raw.readUntil('Z');
      expect(kinds(reply)).toBe('EZ');
      expect(firstError(reply).C).toBe('0A000');
      expect(statusOf(reply)).toBe('I');
      for (const d of direct) expect(await notesOn(d, 'd3')).toBe(0);
      expect(kinds(await raw.query('select 1'))).toBe('TDCZ');
    });

    it('after SET shardgate.shard = 0: runs on shard 0 only', async () => {
      expect(tagsOf(await raw.query('set shardgate.shard = 0'))).toEqual(['SET']);
      for (let i = 0; i < 2; i++) {
        // Twice: a round-robin pick of a shard would send one of them to shard 1.
        raw.write(functionCallFrame(noteItOid, [`d3-routed-${i}`]));
        const reply = await raw.readUntil('Z');
        expect(kinds(reply)).toBe('VZ');
        expect(await notesOn(direct[0], `d3-routed-${i}`)).toBe(1);
        expect(await notesOn(direct[1], `d3-routed-${i}`)).toBe(0);
      }
    });

    it('after SET shardgate.shard = 0, inside BEGIN with a boom row on shard 1: counted as a write (undone)', async () => {
      const { b } = idsForTest();
      await raw.query('set shardgate.shard = 0');
      await raw.query('begin');
      expect(
        tagsOf(
          await raw.query(`/* shardgate: shard=1 */ insert into users (id, name) values (${b}, 'boom')`),
        ),
      ).toEqual(['INSERT 0 1']);
      raw.write(functionCallFrame(noteItOid, ['d3-block']));
      expect(kinds(await raw.readUntil('Z'))).toBe('VZ');
      const commit = await raw.query('commit');
      expect(kinds(commit)).toBe('EZ');
      expect(firstError(commit).C).toBe('P0001');
      for (const d of direct) expect(await notesOn(d, 'd3-block')).toBe(0);
      expect(await usersOn(direct[1], [b])).toBe(0);
    });
  });

  describe("D4 the client's own two-phase commands naming the proxy's prefix sg_", () => {
    for (const how of ['comment', 'set'] as const) {
      const routed = (sql: string): string => (how === 'comment' ? `/* shardgate: shard=0 */ ${sql}` : sql);
      const route = async (): Promise<void> => {
        if (how === 'set') await c.query('set shardgate.shard = 0');
      };

      it(`PREPARE TRANSACTION 'sg_…' is refused under manual routing (${how})`, async () => {
        const { a } = idsForTest();
        await route();
        await c.query('begin');
        await c.query(routed(`insert into users (id, name) values (${a}, 'd4')`));
        const err = await errorOf(c.query(routed(`prepare transaction 'sg_wm_refuse_${a}x1_0'`)));
        expect(err?.code).toBe(PROXY_GID_REFUSAL);
        await c.query('rollback');
        for (const d of direct) expect(await preparedOn(d)).toEqual([]);
        expect(await usersOn(direct[0], [a])).toBe(0);
      });

      it(`COMMIT PREPARED / ROLLBACK PREPARED 'sg_…' are refused under manual routing and touch nothing (${how})`, async () => {
        const { a } = idsForTest();
        // A prepared transaction with the proxy's prefix, as one in doubt would be (another instance's id).
        const gid = `sg_other_${a}x1_0`;
        const owner = (await directShardClients(cluster))[0];
        try {
          await owner.query('begin');
          await owner.query("insert into notes (body) values ('d4-in-doubt')");
          await owner.query(`prepare transaction '${gid}'`);
          await route();
          for (const verb of ['commit prepared', 'rollback prepared']) {
            const err = await errorOf(c.query(routed(`${verb} '${gid}'`)));
            expect(err?.code).toBe(PROXY_GID_REFUSAL);
            expect(await preparedOn(direct[0])).toEqual([gid]);
          }
        } finally {
          await direct[0].query(`rollback prepared '${gid}'`).catch(() => undefined);
          await owner.end();
        }
        expect(await notesOn(direct[0], 'd4-in-doubt')).toBe(0);
      });

      it(`another prefix works under manual routing (${how}): PREPARE TRANSACTION, then COMMIT / ROLLBACK PREPARED`, async () => {
        const { a } = idsForTest();
        const a2 = idOn(0, a + 1);
        await route();
        for (const [id, verb] of [
          [a, 'commit prepared'],
          [a2, 'rollback prepared'],
        ] as const) {
          const gid = `app_${how}_${id}`;
          await c.query('begin');
          await c.query(routed(`insert into users (id, name) values (${id}, 'd4-app')`));
          expect((await c.query(routed(`prepare transaction '${gid}'`))).command).toBe('PREPARE');
          expect(await preparedOn(direct[0])).toEqual([gid]);
          await c.query(routed(`${verb} '${gid}'`));
          expect(await preparedOn(direct[0])).toEqual([]);
        }
        expect(await usersOn(direct[0], [a])).toBe(1);
        expect(await usersOn(direct[0], [a2])).toBe(0);
      });
    }
  });

  it('D5 large-object functions without a hint: lo_create(0), lo_import', async () => {
    const objectsOn = (d: pg.Client): Promise<number> =>
      countOn(d, 'select count(*) as n from pg_largeobject_metadata');
    const before = await Promise.all(direct.map(objectsOn));
    await expectRefused(await errorOf(c.query('select lo_create(0)')));
    await expectRefused(await errorOf(c.query("select lo_import('/etc/hostname')")));
    expect(await Promise.all(direct.map(objectsOn))).toEqual(before);
  });

  it('D6 COPY … FROM PROGRAM and FROM a server file on a sharded table', async () => {
    const { a } = idsForTest();
    await expectRefused(await errorOf(c.query(`copy users (id, name) from program 'echo ${a}	d6'`)));
    await expectRefused(await errorOf(c.query("copy users from '/etc/hostname'")));
    for (const d of direct) expect(await usersOn(d, [a])).toBe(0);
  });
});
