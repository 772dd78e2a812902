// The module-structure check of issue 13: no import cycle among the files of src/ (type-only imports, re-exports and
// dynamic imports count as edges) and no file in src/ over MAX_LINES lines. Today's offenders are listed in
// scripts/check-imports.allow.json; that list may only shrink: a new offender fails, and so does an entry that no
// longer offends (delete it). Run by `npm run lint` (npm run check:imports). Exit 0 = clean, 1 = violations.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const MAX_LINES = 600;

export type ImportKind = 'import' | 'type' | 'dynamic' | 're-export';

export interface ModuleReference {
  specifier: string;
  kind: ImportKind;
}

/** Every module a TypeScript file refers to: imports, `export … from`, `import()`, `import('…').T`, `require()`. */
export function moduleReferences(fileName: string, text: string): ModuleReference[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const refs: ModuleReference[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const isTypeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            named !== undefined &&
            ts.isNamedImports(named) &&
            named.elements.length > 0 &&
            named.elements.every((e) => e.isTypeOnly)));
      refs.push({ specifier: node.moduleSpecifier.text, kind: isTypeOnly ? 'type' : 'import' });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      refs.push({ specifier: node.moduleSpecifier.text, kind: node.isTypeOnly ? 'type' : 're-export' });
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      refs.push({
        specifier: node.moduleReference.expression.text,
        kind: node.isTypeOnly ? 'type' : 'import',
      });
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg) && ts.isStringLiteral(arg.literal))
        refs.push({ specifier: arg.literal.text, kind: 'type' });
    } else if (ts.isCallExpression(node) && node.arguments.length >= 1) {
      const [first] = node.arguments;
      const isImportCall = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if ((isImportCall || isRequire) && ts.isStringLiteralLike(first))
        refs.push({ specifier: first.text, kind: isImportCall ? 'dynamic' : 'import' });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

/** The file a relative specifier names (NodeNext: `./x.js` is `./x.ts`), or null (a package, or not found). */
export function resolveRelative(
  fromFile: string,
  specifier: string,
  exists: (file: string) => boolean,
): string | null {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return null;
  const base = path.resolve(path.dirname(fromFile), specifier);
  const candidates = [
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    base.replace(/\.cjs$/, '.cts'),
    base,
    `${base}.ts`,
    path.join(base, 'index.ts'),
  ];
  return candidates.find(exists) ?? null;
}

export interface Edge {
  to: string;
  kind: ImportKind;
}

export type ImportGraph = Map<string, Edge[]>;

/** Strongly connected components that form a cycle (2+ files, or a file importing itself), members sorted. */
export function findCycles(graph: ImportGraph): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  // Iterative Tarjan: src/ is small, but recursion depth should not depend on the longest import chain.
  for (const root of [...graph.keys()].sort()) {
    if (index.has(root)) continue;
    const work: { node: string; next: number }[] = [{ node: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const edges = graph.get(frame.node) ?? [];
      if (frame.next < edges.length) {
        const to = edges[frame.next++].to;
        if (!graph.has(to)) continue;
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, next: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) !== index.get(frame.node)) continue;
      const members: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        members.push(member);
      } while (member !== frame.node);
      const isSelfImport = members.length === 1 && edges.some((e) => e.to === frame.node);
      if (members.length > 1 || isSelfImport) cycles.push(members.sort());
    }
  }
  return cycles.sort((a, b) => a[0].localeCompare(b[0]));
}

/** One shortest cycle through the component's first member, as `a.ts → b.ts (type) → a.ts`, for messages. */
export function describeCycle(graph: ImportGraph, members: string[]): string {
  const inside = new Set(members);
  const start = members[0];
  const previous = new Map<string, { from: string; kind: ImportKind }>();
  const queue = [start];
  let closing: { from: string; kind: ImportKind } | null = null;
  while (queue.length > 0 && closing === null) {
    const node = queue.shift()!;
    for (const edge of graph.get(node) ?? []) {
      if (!inside.has(edge.to)) continue;
      if (edge.to === start) {
        closing = { from: node, kind: edge.kind };
        break;
      }
      if (!previous.has(edge.to)) {
        previous.set(edge.to, { from: node, kind: edge.kind });
        queue.push(edge.to);
      }
    }
  }
  if (closing === null) return members.join(', ');
  const steps: { file: string; kind: ImportKind }[] = [{ file: start, kind: closing.kind }];
  for (let file = closing.from; file !== start; file = previous.get(file)!.from) {
    steps.unshift({ file, kind: previous.get(file)!.kind });
  }
  steps.unshift({ file: start, kind: 'import' });
  const path = steps
    .map((s, i) => (i === 0 ? s.file : `${s.kind === 'import' ? '' : `(${s.kind}) `}→ ${s.file}`))
    .join(' ');
  const shown = new Set(steps.map((s) => s.file));
  const others = members.filter((m) => !shown.has(m));
  return others.length === 0 ? path : `${path}; the same tangle of cycles also holds ${others.join(', ')}`;
}

export function lineCount(text: string): number {
  if (text === '') return 0;
  return text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length;
}

export interface AllowList {
  cycles: string[][];
  oversized: string[];
}

export interface Findings {
  cycles: string[][];
  oversized: { file: string; lines: number }[];
}

export interface Verdict {
  /** Offenders not on the allow-list. */
  newCycles: string[][];
  newOversized: { file: string; lines: number }[];
  /** Allow-list entries that no longer offend: to delete. */
  staleCycles: string[][];
  staleOversized: string[];
  /** Allowed cycles that shrank: their entry can be narrowed. */
  shrunkCycles: { allowed: string[]; now: string[] }[];
}

/** A found cycle is allowed when an allow-list entry holds all its files (a cycle that grew is a new one). */
export function judge(findings: Findings, allow: AllowList): Verdict {
  const within = (cycle: string[], entry: string[]): boolean => cycle.every((f) => entry.includes(f));
  const newCycles = findings.cycles.filter((c) => !allow.cycles.some((entry) => within(c, entry)));
  const staleCycles = allow.cycles.filter((entry) => !findings.cycles.some((c) => within(c, entry)));
  const shrunkCycles = allow.cycles.flatMap((entry) =>
    findings.cycles
      .filter((c) => within(c, entry) && c.length < entry.length)
      .map((now) => ({ allowed: entry, now })),
  );
  const oversizedNow = new Set(findings.oversized.map((o) => o.file));
  return {
    newCycles,
    newOversized: findings.oversized.filter((o) => !allow.oversized.includes(o.file)),
    staleCycles,
    staleOversized: allow.oversized.filter((file) => !oversizedNow.has(file)),
    shrunkCycles,
  };
}

function listTsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTsFiles(full));
    else if (/\.(ts|mts|cts|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

/** Read src/ under `root`: the import graph (paths relative to root) and the files over MAX_LINES. */
export function scan(root: string, srcDir = 'src'): { graph: ImportGraph; findings: Findings } {
  const files = listTsFiles(path.join(root, srcDir));
  const fileSet = new Set(files);
  const rel = (file: string): string => path.relative(root, file).split(path.sep).join('/');
  const graph: ImportGraph = new Map();
  const oversized: { file: string; lines: number }[] = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const lines = lineCount(text);
    if (lines > MAX_LINES) oversized.push({ file: rel(file), lines });
    const edges: Edge[] = [];
    for (const ref of moduleReferences(file, text)) {
      const target = resolveRelative(file, ref.specifier, (f) => fileSet.has(f));
      if (target !== null) edges.push({ to: rel(target), kind: ref.kind });
    }
    graph.set(rel(file), edges);
  }
  return { graph, findings: { cycles: findCycles(graph), oversized } };
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

export function parseAllowList(text: string, file: string): AllowList {
  const data: unknown = JSON.parse(text);
  const obj = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  const cycles = obj.cycles ?? [];
  const oversized = obj.oversized ?? [];
  if (!Array.isArray(cycles) || !cycles.every(isStringArray) || !isStringArray(oversized))
    throw new Error(`${file}: expected { "cycles": string[][], "oversized": string[] }`);
  return { cycles, oversized };
}

/** The report's lines and whether the check passed. */
export function report(
  graph: ImportGraph,
  findings: Findings,
  allow: AllowList,
  allowFile: string,
): {
  lines: string[];
  isClean: boolean;
} {
  const v = judge(findings, allow);
  const lines: string[] = [];
  for (const c of v.newCycles) lines.push(`import cycle: ${describeCycle(graph, c)}`);
  for (const o of v.newOversized) lines.push(`${o.file}: ${o.lines} lines (max ${MAX_LINES}): split it`);
  for (const c of v.staleCycles)
    lines.push(
      `${allowFile}: the cycle ${JSON.stringify(c)} is gone: delete its entry (the list only shrinks)`,
    );
  for (const f of v.staleOversized)
    lines.push(
      `${allowFile}: ${f} is ${MAX_LINES} lines or fewer now: delete its entry (the list only shrinks)`,
    );
  const isClean = lines.length === 0;
  const allowedCycles = findings.cycles.length - v.newCycles.length;
  const allowedOversized = findings.oversized.length - v.newOversized.length;
  if (allowedCycles + allowedOversized > 0) {
    lines.push(
      `allowed for now (${allowFile}): ${allowedCycles} cycle(s), ${allowedOversized} file(s) over ${MAX_LINES} lines`,
    );
    for (const c of findings.cycles.filter((c) => !v.newCycles.includes(c)))
      lines.push(`  cycle: ${describeCycle(graph, c)}`);
    for (const o of findings.oversized.filter((o) => !v.newOversized.includes(o)))
      lines.push(`  ${o.file}: ${o.lines} lines`);
  }
  for (const s of v.shrunkCycles)
    lines.push(
      `note: the cycle ${JSON.stringify(s.allowed)} shrank to ${JSON.stringify(s.now)}: narrow its entry`,
    );
  lines.push(
    isClean
      ? `check-imports: ok (${graph.size} files)`
      : 'check-imports: FAILED (a cycle: move the shared piece into a module both sides import; a long file: split it by job)',
  );
  return { lines, isClean };
}

function main(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const allowFile = 'scripts/check-imports.allow.json';
  const allowPath = path.join(root, allowFile);
  const allow = fs.existsSync(allowPath)
    ? parseAllowList(fs.readFileSync(allowPath, 'utf8'), allowFile)
    : { cycles: [], oversized: [] };
  const { graph, findings } = scan(root);
  const { lines, isClean } = report(graph, findings, allow, allowFile);
  for (const line of lines) console.log(line);
  process.exitCode = isClean ? 0 : 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
