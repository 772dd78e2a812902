// SHOW CONFIG: the configuration in force (defaults filled in, passwords redacted), one row per setting.
import { configSettings } from '../config/format.js';
import type { AdminContext } from './context.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = cols({ section: 'text', key: 'text', value: 'text', default: 'text' });

export function showConfig(ctx: AdminContext): ResultSet {
  const rows = configSettings(ctx.config()).map((s) => [s.section, s.key, s.value, s.fallback ?? null]);
  return { columns: COLUMNS, rows };
}
