// SHOW VERSION: one row, as PgBouncer.
import { VERSION } from '../version.js';
import { cols, type ResultSet } from './result-set.js';

export function showVersion(): ResultSet {
  return { columns: cols({ version: 'text' }), rows: [[`shardgate ${VERSION}`]] };
}
