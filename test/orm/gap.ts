// Steps that fail on the shards today because of a known proxy gap: `it.fails` there (CI stays green, and the step
// still asserts the correct behaviour), `it` on plain PostgreSQL. SHARDGATE_ORM_GAPS=run runs them as plain `it`
// everywhere, to see how each fails today (or that a fix made it pass).
import { it } from 'vitest';
import type { OrmTarget } from './targets.js';

/**
 * `it` on plain PostgreSQL, `it.fails` on the shards: for a step that fails there today because of a proxy gap (each
 * use carries a `// gap:` comment). The fix turns the call back into `it`.
 */
export function gapOnShards(t: Pick<OrmTarget, 'isSharded'>): typeof it | typeof it.fails {
  return t.isSharded && process.env.SHARDGATE_ORM_GAPS !== 'run' ? it.fails : it;
}
