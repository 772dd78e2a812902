// Output helpers for the benchmark scripts: console tables, Markdown tables and marked sections of
// docs/benchmarks.md, and a hand-written SVG grouped bar chart (no dependencies).
import fs from 'node:fs';
import path from 'node:path';

export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  return Math.round(n).toLocaleString('en-US');
}

export function fmtRatio(a: number | null | undefined, b: number | null | undefined): string {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}×`;
}

export function fmtFixed(n: number | null | undefined, digits: number): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  return n.toFixed(digits);
}

/** A plain-text table with right-aligned columns (except the first). */
export function textTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function markdownTable(headers: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const align = headers.map((_, i) => (i === 0 ? ':--' : '--:'));
  return [headers, align, ...rows].map((r) => `| ${r.map(esc).join(' | ')} |`).join('\n');
}

const DOC_HEADER = `# Benchmarks

shardgate is a PostgreSQL proxy written in TypeScript; [PgBouncer](https://www.pgbouncer.org/) is the speed
reference. The sections below are written by the scripts in \`bench/\` (see \`bench/README.md\`); rerun them to
refresh the numbers. Each section is replaced as a whole by its script, so edits inside the markers are lost.
`;

/**
 * Put `content` between `<!-- name:begin -->` and `<!-- name:end -->` in `file`: replace the existing section,
 * or append one (creating the file with a short header if needed).
 */
export async function writeDocSection(file: string, name: string, content: string): Promise<void> {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n\n${content.trim()}\n\n${end}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : DOC_HEADER;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) {
    text = text.slice(0, i) + block + text.slice(j + end.length);
  } else {
    text = `${text.trimEnd()}\n\n${block}\n`;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, await formatMarkdown(file, text.endsWith('\n') ? text : text + '\n'));
}

/** The project's prettier style (so `prettier --check .` stays green); the text unchanged if prettier fails. */
async function formatMarkdown(file: string, text: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(file)) ?? {};
    return await prettier.format(text, { ...config, filepath: file });
  } catch {
    return text;
  }
}

// ---------------------------------------------------------------------------------------------------------
// SVG

export interface ChartSeries {
  name: string;
  color: string;
}

export interface ChartGroup {
  label: string;
  /** One value per series; null = not measured (drawn as "n/a"). */
  values: (number | null)[];
  /** Extra lines under the group label, e.g. ratios. */
  notes: string[];
}

export interface ChartOptions {
  title: string;
  subtitle: string;
  yLabel: string;
  series: ChartSeries[];
  groups: ChartGroup[];
  footnote?: string;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceStep(rough: number): number {
  if (!(rough > 0)) return 1;
  const pow = 10 ** Math.floor(Math.log10(rough));
  const f = rough / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * pow;
}

/** Axis ticks: 0 → "0", 5000 → "5k", 2500 → "2.5k", 1500000 → "1.5M". */
export function shortNumber(n: number): string {
  const trim = (x: number): string => String(Number(x.toFixed(1)));
  if (Math.abs(n) >= 1e6) return `${trim(n / 1e6)}M`;
  if (Math.abs(n) >= 1e3) return `${trim(n / 1e3)}k`;
  return trim(n);
}

/** Bar labels: 8620 → "8,620", 14481 → "14.5k", 123456 → "123k". */
export function barNumber(n: number): string {
  if (Math.abs(n) < 1e4) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) < 1e5) return `${(n / 1e3).toFixed(1)}k`;
  if (Math.abs(n) < 1e6) return `${Math.round(n / 1e3)}k`;
  return `${(n / 1e6).toFixed(2)}M`;
}

/** Split text into lines of at most `max` characters at spaces. */
function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(' ')) {
    if (cur !== '' && cur.length + 1 + word.length > max) {
      lines.push(cur);
      cur = word;
    } else {
      cur = cur === '' ? word : `${cur} ${word}`;
    }
  }
  if (cur !== '') lines.push(cur);
  return lines;
}

/** A grouped vertical bar chart as standalone SVG text. */
export function groupedBarChartSvg(o: ChartOptions): string {
  const nSeries = o.series.length;
  const barW = 36;
  const barGap = 4;
  const groupGap = 64;
  const groupW = nSeries * barW + (nSeries - 1) * barGap;
  const left = 78;
  const right = 24;
  const top = 92;
  const plotH = 300;
  const maxNotes = Math.max(0, ...o.groups.map((g) => g.notes.length));
  const plotW = o.groups.length * groupW + (o.groups.length + 1) * groupGap;
  const width = Math.max(left + plotW + right, 560);
  // Footnote lines: ~6.2 px per character at 11 px.
  const footLines = o.footnote ? wrap(o.footnote, Math.floor((width - left - right) / 6.2)) : [];
  const bottom = 40 + maxNotes * 16 + (footLines.length > 0 ? 14 + footLines.length * 15 : 0);
  const height = top + plotH + bottom;
  const max = Math.max(1, ...o.groups.flatMap((g) => g.values.filter((v): v is number => v !== null)));
  const step = niceStep(max / 5);
  const yMax = Math.ceil(max / step) * step;
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;
  const font = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${font} font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${left}" y="26" font-size="17" font-weight="600" fill="#222">${xmlEscape(o.title)}</text>`,
  );
  out.push(`<text x="${left}" y="46" fill="#555">${xmlEscape(o.subtitle)}</text>`);
  // Legend
  let lx = left;
  for (const s of o.series) {
    out.push(`<rect x="${lx}" y="60" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 17}" y="70.5" fill="#222">${xmlEscape(s.name)}</text>`);
    lx += 17 + s.name.length * 7.2 + 22;
  }
  // Grid and y axis
  for (let v = 0; v <= yMax + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${yy}" y2="${yy}" stroke="${v === 0 ? '#444' : '#e3e3e3'}"/>`,
    );
    out.push(
      `<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${shortNumber(v)}</text>`,
    );
  }
  out.push(
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#555">${xmlEscape(o.yLabel)}</text>`,
  );
  // Bars
  o.groups.forEach((g, gi) => {
    const gx = left + groupGap + gi * (groupW + groupGap);
    g.values.forEach((v, si) => {
      const bx = gx + si * (barW + barGap);
      const cx = (bx + barW / 2).toFixed(1);
      if (v === null) {
        out.push(
          `<text x="${cx}" y="${top + plotH - 6}" text-anchor="middle" font-size="10" fill="#999">n/a</text>`,
        );
        return;
      }
      const by = y(v);
      const tip = `${o.series[si].name}: ${Math.round(v).toLocaleString('en-US')}`;
      out.push(
        `<rect x="${bx}" y="${by.toFixed(1)}" width="${barW}" height="${(top + plotH - by).toFixed(1)}" fill="${o.series[si].color}"><title>${xmlEscape(tip)}</title></rect>`,
      );
      out.push(
        `<text x="${cx}" y="${(by - 4).toFixed(1)}" text-anchor="middle" font-size="10.5" fill="#333">${barNumber(v)}</text>`,
      );
    });
    const cx = (gx + groupW / 2).toFixed(1);
    out.push(
      `<text x="${cx}" y="${top + plotH + 18}" text-anchor="middle" font-weight="600" fill="#222">${xmlEscape(g.label)}</text>`,
    );
    g.notes.forEach((note, ni) => {
      out.push(
        `<text x="${cx}" y="${top + plotH + 34 + ni * 16}" text-anchor="middle" fill="#555">${xmlEscape(note)}</text>`,
      );
    });
  });
  footLines.forEach((line, i) => {
    const yy = height - 12 - (footLines.length - 1 - i) * 15;
    out.push(`<text x="${left}" y="${yy}" font-size="11" fill="#777">${xmlEscape(line)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** `2025-01-31T12-34-56Z`: a timestamp usable in file names. */
export function fileTimestamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
