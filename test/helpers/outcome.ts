// Small client helpers the deadlock tests share: how a statement ended (its SQLSTATE or 'ok'), and clients opened
// through a proxy that are remembered for the file's clean-up.
import pg from 'pg';
import type { TestProxy } from './proxy.js';

/** The SQLSTATE a promise rejected with, or 'ok'. */
export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** A client connected through `proxy` (errors after a cancel or close ignored), added to `clients` to end later. */
export async function trackedClient(proxy: TestProxy, clients: pg.Client[]): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}
