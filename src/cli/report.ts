/**
 * The evaluation report of `kiln eval --report FILE`: one self-contained HTML page that opens
 * offline (no scripts, fonts, stylesheets or images from elsewhere: the style is inline and the
 * charts are inline SVG from `plot.ts`), with the run's loss curves (train and validation, from
 * the checkpoint's history), tables of metrics (the evaluation's and the run's metrics.json) and
 * text samples. Every piece of text is HTML-escaped.
 * @module
 */
import { show } from '../tensor/validate.js';
import { lossCurveSvg } from './plot.js';

/** A table of the report: one metric per row. */
export interface ReportTable {
  title: string;
  /** [name, value]; numbers are printed to 6 significant digits, null as a dash. */
  rows: readonly (readonly [string, string | number | boolean | null])[];
}

/** A text sample of the report. */
export interface ReportSample {
  /** What it is (`seed 0`, `sample.txt`). */
  label: string;
  /** The prompt it continues ('' for the start of a document). */
  prompt: string;
  /** The generated continuation (without the prompt). */
  text: string;
}

/** What {@link evalReport} shows. */
export interface EvalReportData {
  title: string;
  /** Lines under the title (the checkpoint, the data, the date). */
  subtitle?: readonly string[];
  /** Training loss per logged step, and validation loss per evaluation (the run's history). */
  train: readonly { step: number; loss: number }[];
  val: readonly { step: number; valLoss: number }[];
  /** A dashed reference line on the loss chart (the unigram entropy). */
  baseline?: { value: number; label: string };
  tables: readonly ReportTable[];
  samples: readonly ReportSample[];
}

/** Text safe in HTML content and in double-quoted attributes. */
export function escapeHtml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A metric's value as a table shows it. */
export function formatValue(v: string | number | boolean | null): string {
  if (v === null) return '—';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-4 || a >= 1e9) ? v.toExponential(4) : String(Number(v.toPrecision(6)));
  }
  return String(v);
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 980px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.sub { color: #666; margin: 0.1rem 0; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; min-width: 420px; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; font-size: 0.9rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
pre { white-space: pre-wrap; word-wrap: break-word; background: #f8f8f8; border: 1px solid #e4e4e4; padding: 0.6rem; font-size: 0.85rem; }
pre .prompt { color: #888; }
figure { margin: 0; }
svg { max-width: 100%; height: auto; }
`;

/**
 * The report as one HTML page (a string to write to a `.html` file): title, loss chart, metric
 * tables and samples. Self-contained: it references no other file or address.
 *
 * @example
 * writeFileSync('report.html', evalReport({ title: 'run a', train, val, tables: [{ title: 'eval', rows: [['perplexity', 12.3]] }], samples: [] }));
 */
export function evalReport(data: EvalReportData): string {
  if (data === null || typeof data !== 'object') throw new Error(`evalReport: expected the report's data (an object), got ${show(data)}`);
  const { title, train, val, tables, samples } = data;
  if (typeof title !== 'string') throw new Error(`evalReport: title must be a string, got ${show(title)}`);
  for (const [k, v] of [['train', train], ['val', val], ['tables', tables], ['samples', samples]] as const)
    if (!Array.isArray(v)) throw new Error(`evalReport: ${k} must be an array, got ${show(v)}`);
  const out: string[] = [];
  out.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">');
  out.push(`<title>${escapeHtml(title)}</title>`, `<style>${STYLE}</style>`, '</head>', '<body>');
  out.push(`<h1>${escapeHtml(title)}</h1>`);
  for (const line of data.subtitle ?? []) out.push(`<p class="sub">${escapeHtml(line)}</p>`);

  out.push('<h2>Loss</h2>');
  if (train.length || val.length) {
    const svg = lossCurveSvg({ train, val, title: 'loss', ...(data.baseline ? { baseline: data.baseline } : {}) });
    out.push(`<figure>${svg.trim()}</figure>`);
  } else out.push('<p>No training history in this checkpoint.</p>');
  if (val.length) {
    out.push('<table><thead><tr><th>step</th><th>validation loss</th><th>perplexity</th></tr></thead><tbody>');
    for (const e of val) out.push(`<tr><td class="num">${e.step}</td><td class="num">${formatValue(e.valLoss)}</td><td class="num">${formatValue(Math.exp(e.valLoss))}</td></tr>`);
    out.push('</tbody></table>');
  }

  for (const t of tables) {
    out.push(`<h2>${escapeHtml(t.title)}</h2>`, '<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>');
    for (const [name, value] of t.rows)
      out.push(`<tr><td>${escapeHtml(name)}</td><td${typeof value === 'number' ? ' class="num"' : ''}>${escapeHtml(formatValue(value))}</td></tr>`);
    out.push('</tbody></table>');
  }

  out.push('<h2>Samples</h2>');
  if (!samples.length) out.push('<p>No samples.</p>');
  for (const s of samples) {
    out.push(`<h3>${escapeHtml(s.label)}</h3>`);
    out.push(`<pre>${s.prompt ? `<span class="prompt">${escapeHtml(s.prompt)}</span>` : ''}${escapeHtml(s.text)}</pre>`);
  }
  out.push('</body>', '</html>', '');
  return out.join('\n');
}

