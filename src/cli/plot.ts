/**
 * Line charts as SVG text, written by hand (no plotting dependency): axes with "nice" ticks
 * (1, 2 or 5 × 10ᵏ) and labels, grid lines, one `<polyline>` per series, optional markers and
 * horizontal reference lines, a legend and a title. {@link lossCurveSvg} draws a training run:
 * train loss (raw and smoothed), validation loss and a baseline.
 * @module
 */

/** One line of a chart. */
export interface Series {
  name: string;
  /** [x, y] points in x order; non-finite points are skipped. */
  points: readonly (readonly [number, number])[];
  color: string;
  /** Stroke width (default 2). */
  width?: number;
  /** Stroke opacity (default 1). */
  opacity?: number;
  /** Draw a dot at each point. */
  markers?: boolean;
}

/** A horizontal reference line. */
export interface HLine {
  y: number;
  label: string;
  color: string;
}

/** Options of {@link lineChartSvg}. */
export interface ChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Pixels (default 800 × 480). */
  width?: number;
  height?: number;
  hlines?: readonly HLine[];
}

/** Text safe inside an SVG element or attribute. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** The step between ticks: 1, 2 or 5 × 10ᵏ, so that about `count` ticks cover `range`. */
export function tickStep(range: number, count = 6): number {
  if (!(range > 0) || !Number.isFinite(range)) return 1;
  const raw = range / Math.max(1, count - 1);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * pow;
}

/** Tick values: the multiples of {@link tickStep} within [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  const step = tickStep(hi - lo, count);
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(decimals, 10));
}

const n2 = (x: number): string => (Math.round(x * 10) / 10).toString();

/**
 * A line chart as a standalone SVG document.
 *
 * @example
 * writeFileSync('loss.svg', lineChartSvg([{ name: 'train', points: [[1, 5], [2, 4]], color: '#1f77b4' }], { xLabel: 'step' }));
 */
export function lineChartSvg(series: readonly Series[], opts: ChartOptions = {}): string {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  const m = { left: 72, right: 24, top: opts.title ? 44 : 20, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const pts = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const ys = [...pts.map((p) => p[1]), ...(opts.hlines ?? []).map((h) => h.y).filter(Number.isFinite)];
  let x0 = pts.length ? Math.min(...pts.map((p) => p[0])) : 0;
  let x1 = pts.length ? Math.max(...pts.map((p) => p[0])) : 1;
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  if (x0 > 0 && x0 <= (x1 - x0) * 0.1) x0 = 0; // start the step axis at 0
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number): number => m.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) out.push(`<text x="${n2(W / 2)}" y="26" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(opts.title)}</text>`);
  // grid and ticks
  const xStep = tickStep(x1 - x0, 8);
  const yStep = tickStep(y1 - y0, 7);
  out.push('<g class="grid" stroke="#e6e6e6" stroke-width="1">');
  for (const t of niceTicks(x0, x1, 8)) out.push(`<line x1="${n2(X(t))}" y1="${m.top}" x2="${n2(X(t))}" y2="${m.top + ph}"/>`);
  for (const t of niceTicks(y0, y1, 7)) out.push(`<line x1="${m.left}" y1="${n2(Y(t))}" x2="${m.left + pw}" y2="${n2(Y(t))}"/>`);
  out.push('</g>');
  out.push(`<g class="axes" stroke="#333333" stroke-width="1"><line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}"/><line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}"/></g>`);
  out.push('<g class="ticks" fill="#333333">');
  for (const t of niceTicks(x0, x1, 8)) {
    out.push(`<line x1="${n2(X(t))}" y1="${m.top + ph}" x2="${n2(X(t))}" y2="${m.top + ph + 5}" stroke="#333333"/>`);
    out.push(`<text x="${n2(X(t))}" y="${m.top + ph + 18}" text-anchor="middle">${tickLabel(t, xStep)}</text>`);
  }
  for (const t of niceTicks(y0, y1, 7)) {
    out.push(`<line x1="${m.left - 5}" y1="${n2(Y(t))}" x2="${m.left}" y2="${n2(Y(t))}" stroke="#333333"/>`);
    out.push(`<text x="${m.left - 8}" y="${n2(Y(t) + 4)}" text-anchor="end">${tickLabel(t, yStep)}</text>`);
  }
  out.push('</g>');
  if (opts.xLabel) out.push(`<text x="${n2(m.left + pw / 2)}" y="${H - 14}" text-anchor="middle" font-size="13">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel)
    out.push(`<text x="18" y="${n2(m.top + ph / 2)}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${n2(m.top + ph / 2)})">${escapeXml(opts.yLabel)}</text>`);
  // reference lines
  for (const h of opts.hlines ?? []) {
    if (!Number.isFinite(h.y)) continue;
    out.push(`<line x1="${m.left}" y1="${n2(Y(h.y))}" x2="${m.left + pw}" y2="${n2(Y(h.y))}" stroke="${h.color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.left + pw - 4}" y="${n2(Y(h.y) - 5)}" text-anchor="end" fill="${h.color}">${escapeXml(h.label)}</text>`);
  }
  // series
  for (const s of series) {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (!p.length) continue;
    const attrs = `fill="none" stroke="${s.color}" stroke-width="${s.width ?? 2}" stroke-opacity="${s.opacity ?? 1}" stroke-linejoin="round"`;
    out.push(`<polyline ${attrs} points="${p.map(([x, y]) => `${n2(X(x))},${n2(Y(y))}`).join(' ')}"><title>${escapeXml(s.name)}</title></polyline>`);
    if (s.markers) for (const [x, y] of p) out.push(`<circle cx="${n2(X(x))}" cy="${n2(Y(y))}" r="3" fill="${s.color}"/>`);
  }
  // legend
  const shown = series.filter((s) => s.points.length);
  shown.forEach((s, i) => {
    const y = m.top + 14 + i * 18;
    const x = m.left + pw - 170;
    out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 24}" y2="${y - 4}" stroke="${s.color}" stroke-width="${s.width ?? 2}" stroke-opacity="${s.opacity ?? 1}"/>`);
    out.push(`<text x="${x + 30}" y="${y}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Means of consecutive buckets, so a long series becomes at most `max` points. */
export function downsample(points: readonly (readonly [number, number])[], max: number): [number, number][] {
  if (points.length <= max) return points.map(([x, y]) => [x, y]);
  const size = Math.ceil(points.length / max);
  const out: [number, number][] = [];
  for (let i = 0; i < points.length; i += size) {
    const b = points.slice(i, i + size);
    out.push([b.reduce((a, p) => a + p[0], 0) / b.length, b.reduce((a, p) => a + p[1], 0) / b.length]);
  }
  return out;
}

/** An exponential moving average of y with bias correction (as TensorBoard's smoothing), β in [0, 1). */
export function smooth(points: readonly (readonly [number, number])[], beta: number): [number, number][] {
  let m = 0;
  return points.map(([x, y], i) => {
    m = beta * m + (1 - beta) * y;
    return [x, m / (1 - beta ** (i + 1))];
  });
}

/** What {@link lossCurveSvg} draws. */
export interface LossCurve {
  /** Training loss per step. */
  train: readonly { step: number; loss: number }[];
  /** Validation loss per evaluation. */
  val: readonly { step: number; valLoss: number }[];
  /** A baseline to draw as a dashed line (the unigram entropy). */
  baseline?: { value: number; label: string };
  title?: string;
}

/** The loss curve of a run: raw train loss (faint), smoothed train loss, validation loss with markers, and a baseline. */
export function lossCurveSvg(c: LossCurve): string {
  const raw = c.train.map((h) => [h.step, h.loss] as [number, number]);
  // an averaging window of about a fiftieth of the run
  const beta = Math.min(0.98, Math.max(0, 1 - 50 / Math.max(1, raw.length)));
  const series: Series[] = [
    { name: 'train loss', points: downsample(raw, 800), color: '#1f77b4', width: 1, opacity: 0.3 },
    { name: 'train loss (smoothed)', points: downsample(smooth(raw, beta), 800), color: '#1f77b4', width: 2 },
    { name: 'validation loss', points: c.val.map((e) => [e.step, e.valLoss] as [number, number]), color: '#d62728', width: 2, markers: true },
  ];
  return lineChartSvg(series, {
    title: c.title ?? 'loss',
    xLabel: 'step',
    yLabel: 'loss (nats per token)',
    hlines: c.baseline ? [{ y: c.baseline.value, label: c.baseline.label, color: '#2ca02c' }] : [],
  });
}
