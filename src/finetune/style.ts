/**
 * Style guides as data. A guide is a small declarative JSON file — a tone and a list of rules on
 * formatting and vocabulary — from which come (1) a system prompt that states it, (2) checks that
 * score any output against each rule, and (3) a rewrite that makes a response follow the rules
 * where a rule says how (case, a prefix or suffix, a word limit, forbidden or replaced words), so
 * that fine-tuning data can be put in the guide's style. The score of generated responses is
 * what `kiln finetune --style` reports before and after, and what PPO can use as a reward.
 *
 * @example
 * {"name": "terse", "tone": "plain and brief",
 *  "rules": [{"kind": "case", "value": "lower"}, {"kind": "endsWith", "value": "."},
 *            {"kind": "maxWords", "value": 6}, {"kind": "forbid", "words": ["very", "really"]}]}
 * @module
 */
import { show } from '../tensor/validate.js';

/** One rule of a style guide. */
export type StyleRule =
  | { kind: 'case'; value: 'lower' | 'upper' }
  | { kind: 'startsWith'; value: string }
  | { kind: 'endsWith'; value: string }
  | { kind: 'maxWords'; value: number }
  | { kind: 'forbid'; words: string[] }
  | { kind: 'replace'; from: string; to: string };

/** A style guide: a name, a tone (stated in the system prompt) and rules (stated and checked). */
export interface StyleGuide {
  name: string;
  tone?: string;
  rules: StyleRule[];
}

const KINDS = ['case', 'startsWith', 'endsWith', 'maxWords', 'forbid', 'replace'] as const;

/** A style guide from its JSON (text or parsed); errors name the source and the rule. */
export function parseStyleGuide(json: string | unknown, source = 'parseStyleGuide'): StyleGuide {
  if (typeof source !== 'string' || source === '') throw new Error(`parseStyleGuide: source must be a non-empty string (the file's name), got ${show(source)}`);
  let g: unknown = json;
  if (typeof json === 'string') {
    try {
      g = JSON.parse(json);
    } catch (e) {
      throw new Error(`${source}: not JSON (${(e as Error).message})`);
    }
  }
  if (g === null || typeof g !== 'object' || Array.isArray(g)) throw new Error(`${source}: expected an object {name, tone?, rules}, got ${show(g)}`);
  const o = g as Record<string, unknown>;
  if (typeof o.name !== 'string' || o.name === '') throw new Error(`${source}: 'name' must be a non-empty string, got ${show(o.name)}`);
  if (o.tone !== undefined && typeof o.tone !== 'string') throw new Error(`${source}: 'tone' must be a string, got ${show(o.tone)}`);
  if (!Array.isArray(o.rules) || o.rules.length === 0) throw new Error(`${source}: 'rules' must be a non-empty array, got ${show(o.rules)}`);
  const rules = o.rules.map((r, i): StyleRule => {
    const where = `${source}: rule ${i}`;
    if (r === null || typeof r !== 'object') throw new Error(`${where} must be an object, got ${show(r)}`);
    const x = r as Record<string, unknown>;
    const str = (k: string): string => {
      if (typeof x[k] !== 'string' || x[k] === '') throw new Error(`${where} (${String(x.kind)}): '${k}' must be a non-empty string, got ${show(x[k])}`);
      return x[k] as string;
    };
    switch (x.kind) {
      case 'case':
        if (x.value !== 'lower' && x.value !== 'upper') throw new Error(`${where} (case): 'value' must be lower or upper, got ${show(x.value)}`);
        return { kind: 'case', value: x.value };
      case 'startsWith':
      case 'endsWith':
        return { kind: x.kind, value: str('value') };
      case 'maxWords':
        if (!Number.isInteger(x.value) || (x.value as number) < 1) throw new Error(`${where} (maxWords): 'value' must be a positive integer, got ${show(x.value)}`);
        return { kind: 'maxWords', value: x.value as number };
      case 'forbid':
        if (!Array.isArray(x.words) || x.words.length === 0 || x.words.some((w) => typeof w !== 'string' || w === ''))
          throw new Error(`${where} (forbid): 'words' must be a non-empty array of words, got ${show(x.words)}`);
        return { kind: 'forbid', words: x.words as string[] };
      case 'replace':
        return { kind: 'replace', from: str('from'), to: str('to') };
      default:
        throw new Error(`${where}: 'kind' must be one of ${KINDS.join(', ')}, got ${show(x.kind)}`);
    }
  });
  return { name: o.name, ...(o.tone !== undefined ? { tone: o.tone as string } : {}), rules };
}

const words = (text: string): string[] => text.trim().split(/\s+/).filter(Boolean);
const wordRe = (w: string): RegExp => new RegExp(`(^|[^\\p{L}\\p{N}])${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=$|[^\\p{L}\\p{N}])`, 'iu');

// a guide argument, checked as parseStyleGuide checks a file (errors start with `op`)
function guideArg(op: string, g: unknown): StyleGuide {
  if (typeof g === 'string') throw new Error(`${op}: expected a style guide object (parseStyleGuide reads JSON text), got a string`);
  return parseStyleGuide(g, op);
}
function ruleArg(op: string, r: unknown): StyleRule {
  return parseStyleGuide({ name: 'rule', rules: [r] }, op).rules[0]!;
}
function textArg(op: string, t: unknown, what = 'text'): string {
  if (typeof t !== 'string') throw new Error(`${op}: ${what} must be a string, got ${show(t)}`);
  return t;
}

/** The rule in words, for the system prompt and reports. */
export function describeRule(rule: StyleRule): string {
  const r = ruleArg('describeRule', rule);
  switch (r.kind) {
    case 'case':
      return `write in ${r.value}case`;
    case 'startsWith':
      return `begin with "${r.value}"`;
    case 'endsWith':
      return `end with "${r.value}"`;
    case 'maxWords':
      return `use at most ${r.value} words`;
    case 'forbid':
      return `never use the words ${r.words.map((w) => `"${w}"`).join(', ')}`;
    case 'replace':
      return `say "${r.to}", not "${r.from}"`;
  }
}

/** The system prompt that states the guide. */
export function styleSystemPrompt(guide: StyleGuide): string {
  const g = guideArg('styleSystemPrompt', guide);
  return `Style: ${g.name}${g.tone ? `, ${g.tone}` : ''}. Rules: ${g.rules.map(describeRule).join('; ')}.`;
}

/** Whether `text` follows rule `r`. */
export function followsRule(rule: StyleRule, text: string): boolean {
  const r = ruleArg('followsRule', rule);
  textArg('followsRule', text);
  return follows(r, text);
}

function follows(r: StyleRule, text: string): boolean {
  const t = text.trim();
  switch (r.kind) {
    case 'case':
      return t === (r.value === 'lower' ? t.toLowerCase() : t.toUpperCase());
    case 'startsWith':
      return text.trimStart().startsWith(r.value);
    case 'endsWith':
      return text.trimEnd().endsWith(r.value);
    case 'maxWords':
      return words(t).length <= r.value;
    case 'forbid':
      return !r.words.some((w) => wordRe(w).test(t));
    case 'replace':
      return !wordRe(r.from).test(t);
  }
}

/** The fraction of the guide's rules that `text` follows (1: all). */
export function styleScore(guide: StyleGuide, text: string): number {
  const g = guideArg('styleScore', guide);
  textArg('styleScore', text);
  return g.rules.filter((r) => follows(r, text)).length / g.rules.length;
}

/** Mean score over texts, and each rule's pass rate. */
export function styleReport(guide: StyleGuide, texts: readonly string[]): { score: number; rules: { rule: string; passRate: number }[] } {
  const op = 'styleReport';
  const g = guideArg(op, guide);
  if (!Array.isArray(texts)) throw new Error(`${op}: texts must be an array of strings, got ${show(texts)}`);
  texts.forEach((t, i) => textArg(op, t, `texts[${i}]`));
  if (texts.length === 0) throw new Error(`${op}: no texts`);
  return {
    score: texts.reduce((a, t) => a + g.rules.filter((r) => follows(r, t)).length / g.rules.length, 0) / texts.length,
    rules: g.rules.map((r) => ({ rule: describeRule(r), passRate: texts.filter((t) => follows(r, t)).length / texts.length })),
  };
}

/**
 * `text` rewritten to follow the guide: replacements and forbidden words first, then the word
 * limit, the case, and the prefix and suffix. Every rule kind has a rewrite, so the result
 * follows every rule (a test checks it).
 */
export function applyStyle(guide: StyleGuide, text: string): string {
  const g = guideArg('applyStyle', guide);
  let t = textArg('applyStyle', text).trim();
  for (const r of g.rules) {
    if (r.kind === 'replace') t = t.replace(new RegExp(wordRe(r.from).source, 'giu'), (_m: string, pre: string) => `${pre}${r.to}`);
    if (r.kind === 'forbid') for (const w of r.words) t = t.replace(new RegExp(wordRe(w).source, 'giu'), (_m: string, pre: string) => pre).replace(/\s+/g, ' ').trim();
  }
  const fix = g.rules.filter((r): r is Extract<StyleRule, { kind: 'startsWith' | 'endsWith' }> => r.kind === 'startsWith' || r.kind === 'endsWith');
  // the words the prefix and suffix add once attached ('.' adds none, 'Answer: ' one)
  const pre = fix.find((r) => r.kind === 'startsWith')?.value ?? '';
  const suf = fix.find((r) => r.kind === 'endsWith')?.value ?? '';
  const room = words(`${pre}x${suf}`).length - 1;
  for (const r of g.rules) if (r.kind === 'maxWords') t = words(t).slice(0, Math.max(0, r.value - room)).join(' ');
  for (const r of g.rules) if (r.kind === 'case') t = r.value === 'lower' ? t.toLowerCase() : t.toUpperCase();
  for (const r of fix) {
    if (r.kind === 'startsWith' && !t.startsWith(r.value)) t = `${r.value}${t}`;
    if (r.kind === 'endsWith' && !t.endsWith(r.value)) t = `${t}${r.value}`;
  }
  return t;
}
