// scripts/check-imports.ts: which references count as import edges, cycles (type-only ones too), long files, and how
// the allow-list of today's offenders is judged. The last test runs it over a real folder of files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  findCycles,
  judge,
  lineCount,
  MAX_LINES,
  moduleReferences,
  report,
  resolveRelative,
  scan,
  type ImportGraph,
} from '../../../scripts/check-imports.js';

function graphOf(edges: Record<string, string[]>): ImportGraph {
  return new Map(
    Object.entries(edges).map(([from, tos]) => [from, tos.map((to) => ({ to, kind: 'import' as const }))]),
  );
}

describe('moduleReferences', () => {
  it('finds every kind of reference, marking type-only ones', () => {
    const text = [
      "import a from './a.js';",
      "import type { B } from './b.js';",
      "import { type C, type D } from './c.js';",
      "import { type E, f } from './e.js';",
      "import './side-effect.js';",
      "export { g } from './g.js';",
      "export type { H } from './h.js';",
      "export * from './star.js';",
      "type I = import('./i.js').I;",
      "const j = await import('./j.js');",
      "const k = require('./k.js');",
      "import pg from 'pg';",
      "const notAnImport = `import x from './template.js'`;",
    ].join('\n');
    expect(moduleReferences('x.ts', text)).toEqual([
      { specifier: './a.js', kind: 'import' },
      { specifier: './b.js', kind: 'type' },
      { specifier: './c.js', kind: 'type' },
      { specifier: './e.js', kind: 'import' },
      { specifier: './side-effect.js', kind: 'import' },
      { specifier: './g.js', kind: 're-export' },
      { specifier: './h.js', kind: 'type' },
      { specifier: './star.js', kind: 're-export' },
      { specifier: './i.js', kind: 'type' },
      { specifier: './j.js', kind: 'dynamic' },
      { specifier: './k.js', kind: 'import' },
      { specifier: 'pg', kind: 'import' },
    ]);
  });
});

describe('resolveRelative', () => {
  const files = new Set(['/r/src/a/b.ts', '/r/src/c/index.ts']);
  const exists = (f: string): boolean => files.has(f);
  it('maps NodeNext .js specifiers to .ts files and folders to index.ts; packages are not files', () => {
    expect(resolveRelative('/r/src/a/x.ts', './b.js', exists)).toBe('/r/src/a/b.ts');
    expect(resolveRelative('/r/src/a/x.ts', '../c', exists)).toBe('/r/src/c/index.ts');
    expect(resolveRelative('/r/src/a/x.ts', './missing.js', exists)).toBeNull();
    expect(resolveRelative('/r/src/a/x.ts', 'pg', exists)).toBeNull();
  });
});

describe('findCycles', () => {
  it('returns each strongly connected tangle once, sorted, and leaves acyclic parts out', () => {
    const graph = graphOf({
      a: ['b'],
      b: ['c'],
      c: ['a', 'd'],
      d: ['e'],
      e: [],
      s: ['s'],
      x: ['y'],
      y: ['x'],
    });
    expect(findCycles(graph)).toEqual([['a', 'b', 'c'], ['s'], ['x', 'y']]);
    expect(findCycles(graphOf({ a: ['b'], b: ['c'], c: [] }))).toEqual([]);
  });
});

describe('judge', () => {
  it('allows listed offenders, fails new ones and grown cycles, and flags entries that no longer offend', () => {
    const findings = {
      cycles: [
        ['a', 'b'],
        ['p', 'q', 'r'],
      ],
      oversized: [
        { file: 'big.ts', lines: 900 },
        { file: 'new-big.ts', lines: 700 },
      ],
    };
    const allow = {
      cycles: [
        ['a', 'b', 'c'],
        ['p', 'q'],
        ['gone1', 'gone2'],
      ],
      oversized: ['big.ts', 'was-big.ts'],
    };
    expect(judge(findings, allow)).toEqual({
      newCycles: [['p', 'q', 'r']],
      newOversized: [{ file: 'new-big.ts', lines: 700 }],
      staleCycles: [
        ['p', 'q'],
        ['gone1', 'gone2'],
      ],
      staleOversized: ['was-big.ts'],
      shrunkCycles: [{ allowed: ['a', 'b', 'c'], now: ['a', 'b'] }],
    });
  });
});

describe('lineCount', () => {
  it('counts lines as wc -l does for files ending in a newline', () => {
    expect(lineCount('')).toBe(0);
    expect(lineCount('a\n')).toBe(1);
    expect(lineCount('a\nb')).toBe(2);
  });
});

describe('scan over real files', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'check-imports-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  function write(file: string, text: string): void {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  }

  it('reports a cycle made by a type-only import and a file over the limit, and passes once they are allowed', () => {
    write(
      'src/testing/cluster.ts',
      "import { start } from './docker.js';\nexport interface Server { port: number }\n",
    );
    write(
      'src/testing/docker.ts',
      "import type { Server } from './cluster.js';\nexport const start = (s: Server) => s;\n",
    );
    write('src/ok/leaf.ts', 'export const x = 1;\n');
    write('src/ok/uses-leaf.ts', "import { x } from './leaf.js';\nexport const y = x;\n");
    write('src/long.ts', 'export const n = 1;\n'.repeat(MAX_LINES + 1));
    write('src/short.ts', 'export const n = 1;\n'.repeat(MAX_LINES));

    const { graph, findings } = scan(root);
    expect(findings.cycles).toEqual([['src/testing/cluster.ts', 'src/testing/docker.ts']]);
    expect(findings.oversized).toEqual([{ file: 'src/long.ts', lines: MAX_LINES + 1 }]);

    const failing = report(graph, findings, { cycles: [], oversized: [] }, 'allow.json');
    expect(failing.isClean).toBe(false);
    expect(failing.lines).toContain(
      'import cycle: src/testing/cluster.ts → src/testing/docker.ts (type) → src/testing/cluster.ts',
    );
    expect(failing.lines).toContain(`src/long.ts: ${MAX_LINES + 1} lines (max ${MAX_LINES}): split it`);

    const allowed = report(
      graph,
      findings,
      { cycles: [['src/testing/cluster.ts', 'src/testing/docker.ts']], oversized: ['src/long.ts'] },
      'allow.json',
    );
    expect(allowed.isClean).toBe(true);
  });
});
