/**
 * METEOR against test/fixtures/meteor/meteor.json, written by test/fixtures/meteor/gen.py:
 * NLTK 3.8's `meteor_score` / `single_meteor_score` / alignment with WordNet 3.0 on NLTK's
 * docstring sentences, hand-picked cases (each stage, repeats, empty sides, other α, β, γ, no
 * stemmer) and random sentences from a vocabulary rich in synonyms and inflections. The fixture
 * carries the WordNet synonym sets of the words involved, passed to kiln as its table.
 * Regenerate with: /usr/bin/python3 test/fixtures/meteor/gen.py
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { corpusMeteor, meteorAlign, meteorScore, type MeteorOptions } from '../src/metrics/meteor.js';

interface Case {
  name: string;
  references: string[][];
  hypothesis: string[];
  options?: { alpha?: number; beta?: number; gamma?: number; stemmer?: boolean };
  score: number;
  perReference: number[];
  alignments: [number, number][][];
}
interface Fixture {
  nltk: string;
  wordnet: string;
  synonyms: Record<string, string[]>;
  cases: Case[];
}

const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/meteor/meteor.json', import.meta.url), 'utf8')) as Fixture;
const SYN = FIXTURE.synonyms;
const byName = (name: string): Case => FIXTURE.cases.find((c) => c.name === name)!;
const optsOf = (c: Case): MeteorOptions => ({ ...c.options, synonyms: SYN });

/** |a − e| ≤ 1e−12 (Python's `**` and JS's `**` may differ in the last bit). */
function near(a: number, e: number, what: string): void {
  if (!(Math.abs(a - e) <= 1e-12)) expect.fail(`${what}: got ${a}, expected ${e}`);
}

const HYP1 = 'It is a guide to action which ensures that the military always obeys the commands of the party'.split(' ');
const REF1 = 'It is a guide to action that ensures that the military will forever heed Party commands'.split(' ');

describe('meteorScore: NLTK meteor_score', () => {
  it("reproduces NLTK's docstring examples (0.6944 and 0.0)", () => {
    expect(FIXTURE.nltk).toBe('3.8');
    expect(meteorScore([REF1], HYP1).toFixed(4)).toBe('0.6944');
    const three = byName('nltk docstring: meteor_score([reference1, reference2, reference3], hypothesis1)');
    expect(meteorScore(three.references, three.hypothesis, { synonyms: SYN }).toFixed(4)).toBe('0.6944');
    expect(meteorScore([['this', 'is', 'a', 'cat']], ['non', 'matching', 'hypothesis'])).toBe(0);
  });

  it('the docstring example by hand: 12 matches in 6 chunks, 18 and 16 tokens: 25/36', () => {
    const a = meteorAlign(REF1, HYP1);
    expect(a.matches.length).toBe(12);
    expect(a.chunks).toBe(6);
    // P = 2/3, R = 3/4: Fmean = (1/2) / (0.6 + 0.075) = 20/27; penalty = 0.5·(6/12)³ = 1/16
    near(a.fmean, 20 / 27, 'fmean');
    near(a.penalty, 1 / 16, 'penalty');
    near(a.score, 25 / 36, 'score');
  });

  it(`agrees with NLTK ${FIXTURE.nltk} (WordNet ${FIXTURE.wordnet}) on all ${FIXTURE.cases.length} fixture cases`, () => {
    expect(FIXTURE.cases.length).toBeGreaterThan(70);
    for (const c of FIXTURE.cases) {
      near(meteorScore(c.references, c.hypothesis, optsOf(c)), c.score, c.name);
      c.references.forEach((ref, i) => {
        const a = meteorAlign(ref, c.hypothesis, optsOf(c));
        near(a.score, c.perReference[i]!, `${c.name}, reference ${i}`);
        expect(a.matches, `${c.name}, reference ${i}`).toEqual(c.alignments[i]);
      });
    }
  });

  it('each stage fires: exact, stem, synonym (on stems, as NLTK), and the synonym table matters', () => {
    expect(meteorAlign(['the', 'dogs', 'were', 'running'], ['a', 'dog', 'runs']).matches).toEqual([[1, 1], [2, 3]]);
    expect(meteorAlign(['the', 'dogs'], ['a', 'dog'], { stemmer: false }).matches).toEqual([]);
    const syn = byName('synonym match');
    near(meteorScore(syn.references, syn.hypothesis, { synonyms: SYN }), syn.score, syn.name);
    expect(meteorScore(syn.references, syn.hypothesis)).toBeLessThan(syn.score);
    // NLTK looks synonyms up for stems: 'large' → 'larg' is no lemma of big's synsets
    expect(meteorAlign(['a', 'large', 'automobile'], ['a', 'big', 'car'], { synonyms: SYN }).matches).toEqual([[0, 0]]);
    expect(meteorAlign(['a', 'large', 'automobile'], ['a', 'big', 'car'], { synonyms: SYN, stemmer: false }).matches.length).toBe(3);
    // without the table, some random fixture cases score lower
    const changed = FIXTURE.cases.filter((c) => meteorScore(c.references, c.hypothesis, { ...c.options }) < c.score - 1e-12);
    expect(changed.length).toBeGreaterThan(5);
  });

  it('takes the synonyms as a Map, a plain object or a function alike', () => {
    const ref = ['a', 'great', 'hound'];
    const hyp = ['a', 'big', 'dog'];
    const expected = meteorScore([ref], hyp, { synonyms: { big: ['great'], dog: ['hound'] } });
    near(expected, 1 - 0.5 * (1 / 3) ** 3, 'object');
    near(meteorScore([ref], hyp, { synonyms: new Map<string, Iterable<string>>([['big', new Set(['great'])], ['dog', ['hound']]]) }), expected, 'Map');
    near(meteorScore([ref], hyp, { synonyms: (w) => (w === 'big' ? ['great'] : w === 'dog' ? ['hound'] : []) }), expected, 'function');
    // a key named like an Object.prototype member is only a token
    expect(meteorScore([['toString']], ['constructor'], { synonyms: {} })).toBe(0);
  });

  it('the best reference wins; several references never score below one', () => {
    const c = byName('nltk docstring: hypothesis2, three references');
    near(c.score, Math.max(...c.perReference), 'fixture');
    const s = meteorScore(c.references, c.hypothesis, { synonyms: SYN });
    for (const r of c.references) expect(s).toBeGreaterThanOrEqual(meteorScore([r], c.hypothesis, { synonyms: SYN }));
  });

  it('alpha, beta, gamma, preprocess and the stemmer are options', () => {
    // identical 4 tokens: one chunk of 4, P = R = 1
    const same = ['a', 'b', 'c', 'd'];
    near(meteorScore([same], same), 1 - 0.5 * (1 / 4) ** 3, 'defaults');
    near(meteorScore([same], same, { gamma: 0 }), 1, 'gamma 0');
    near(meteorScore([same], same, { beta: 1, gamma: 1 }), 0.75, 'beta 1 gamma 1');
    // P = 1/2, R = 1: Fmean = P·R / (α·P + (1−α)·R)
    const a = meteorAlign(['x'], ['x', 'y'], { alpha: 0.5, gamma: 0 });
    near(a.fmean, 0.5 / (0.25 + 0.5), 'alpha 0.5');
    expect(meteorScore([['Cat']], ['cat'], { preprocess: (t) => t })).toBe(0.5); // the stem stage lower-cases
    expect(meteorScore([['Cat']], ['cat'], { preprocess: (t) => t, stemmer: false })).toBe(0);
    expect(meteorScore([['runner']], ['running'], { stemmer: (t) => t.slice(0, 3) })).toBe(0.5);
  });

  it('scores in [0, 1], 0 for an empty side', () => {
    for (const c of FIXTURE.cases) {
      const s = meteorScore(c.references, c.hypothesis, optsOf(c));
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThanOrEqual(1);
    }
    expect(meteorScore([['a']], [])).toBe(0);
    expect(meteorScore([[]], ['a'])).toBe(0);
    expect(meteorAlign([], [])).toMatchObject({ matches: [], chunks: 0, score: 0 });
  });
});

describe('corpusMeteor', () => {
  it('is the mean of the segment scores', () => {
    const cs = FIXTURE.cases.filter((c) => !c.options);
    const mean = cs.reduce((s, c) => s + c.score, 0) / cs.length;
    near(
      corpusMeteor(
        cs.map((c) => c.references),
        cs.map((c) => c.hypothesis),
        { synonyms: SYN },
      ),
      mean,
      'corpus',
    );
  });
});

describe('METEOR input checks', () => {
  it('names the function and the bad value', () => {
    expect(() => meteorScore([['a']], 'a b' as never)).toThrow(/^meteorScore: hypothesis must be an array of tokens.*'a b'.*split/);
    expect(() => meteorScore([], ['a'])).toThrow(/^meteorScore: references must be a non-empty array/);
    expect(() => meteorScore(['a b'] as never, ['a'])).toThrow(/^meteorScore: references\[0\] must be an array of tokens/);
    expect(() => meteorScore([['a']], ['a'], { alpha: 1.5 })).toThrow(/^meteorScore: alpha must be .*1\.5/);
    expect(() => meteorScore([['a']], ['a'], { synonyms: { a: 'b' } as never })).toThrow(/^meteorScore: the synonyms of 'a' must be an array/);
    expect(() => meteorScore([['a']], ['b'], { synonyms: () => 5 as never })).toThrow(/^meteorScore: the synonyms of 'b' must be an array.*5/);
    expect(() => corpusMeteor([[['a']]], [['a'], ['b']])).toThrow(/^corpusMeteor: 2 hypotheses but 1 reference lists/);
    expect(() => meteorAlign(['a'], ['a'], { bogus: 1 } as never)).toThrow(/^meteorAlign: unknown option 'bogus'/);
  });
});
