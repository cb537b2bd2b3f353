/**
 * Porter stemming and stemmed ROUGE against test/fixtures/porter.json, written by
 * test/fixtures/make_porter_fixtures.py: NLTK's `PorterStemmer()` (default mode, the one
 * rouge-score's `use_stemmer=True` builds) on thousands of words — hand-picked cases of every rule
 * and of NLTK's departures from the paper, the State of the Union vocabulary, random stacked
 * suffixes — and ROUGE-1/2/L/Lsum with stemming from rouge-score's rules re-implemented in Python
 * over that same NLTK stemmer (the generator's docstring says more).
 * Regenerate with: /usr/bin/python3 test/fixtures/make_porter_fixtures.py
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { corpusRouge, porterStem, rouge, rougeTokenize, type RougeScore, type RougeType } from '../src/metrics/index.js';

interface Fixture {
  nltk: string;
  words: [string, string][];
  rouge: { prediction: string; references: string[]; expected: Record<string, RougeScore> }[];
}

const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/porter.json', import.meta.url), 'utf8')) as Fixture;
const TYPES: readonly RougeType[] = ['rouge1', 'rouge2', 'rougeL', 'rougeLsum'];

/** |a − e| ≤ 1e−12. */
function near(a: number, e: number, what: string): void {
  if (!(Math.abs(a - e) <= 1e-12)) expect.fail(`${what}: got ${a}, expected ${e}`);
}

describe('porterStem: NLTK PorterStemmer (NLTK_EXTENSIONS)', () => {
  it(`returns NLTK ${FIXTURE.nltk}'s stem for every one of the ${FIXTURE.words.length} fixture words`, () => {
    expect(FIXTURE.words.length).toBeGreaterThan(4000);
    const wrong = FIXTURE.words.filter(([w, s]) => porterStem(w) !== s).map(([w, s]) => `${w}: ${porterStem(w)} (NLTK ${s})`);
    expect(wrong).toEqual([]);
  });

  it('follows the paper and NLTK on the cases each departure is about', () => {
    const cases: [string, string][] = [
      // the paper's examples
      ['caresses', 'caress'],
      ['ponies', 'poni'],
      ['agreed', 'agre'],
      ['plastered', 'plaster'],
      ['motoring', 'motor'],
      ['hopping', 'hop'],
      ['filing', 'file'],
      ['relational', 'relat'],
      ['controll', 'control'],
      // NLTK's irregular forms, looked up in the word as given
      ['skies', 'sky'],
      ['Skies', 'ski'],
      ['dying', 'die'],
      ['news', 'news'],
      ['succeed', 'succeed'],
      ['proceeds', 'proce'],
      // four-letter -ies / -ied; y → i only after a consonant that is not the first letter
      ['ties', 'tie'],
      ['died', 'die'],
      ['spied', 'spi'],
      ['happy', 'happi'],
      ['enjoy', 'enjoy'],
      ['spy', 'spi'],
      // -alli first, -bli, -logi, -fulli
      ['generously', 'gener'],
      ['traditionally', 'tradit'],
      ['possibly', 'possibl'],
      ['geologi', 'geolog'],
      ['carefulli', 'care'],
      // one or two characters, upper case, code points
      ['OX', 'ox'],
      ['RUNNING', 'run'],
      ['a\u{1F600}\u{1F600}ing', 'a\u{1F600}'],
    ];
    for (const [w, s] of cases) expect(porterStem(w), w).toBe(s);
  });

  it('names itself when given something that is not a string', () => {
    expect(() => porterStem(3 as never)).toThrow(/^porterStem: word must be a string, got 3/);
  });
});

describe("ROUGE with stemmer: 'porter' (rouge-score's use_stemmer=True)", () => {
  it(`ROUGE-1/2/L/Lsum agree with the oracle on ${FIXTURE.rouge.length} sentence pairs`, () => {
    expect(FIXTURE.rouge.length).toBeGreaterThanOrEqual(12);
    let changed = 0;
    for (const c of FIXTURE.rouge) {
      const got = rouge(c.prediction, c.references, { types: TYPES, stemmer: 'porter' });
      for (const t of TYPES)
        for (const k of ['precision', 'recall', 'fmeasure'] as const) near(got[t][k], c.expected[t]![k], `${t}.${k} ${JSON.stringify(c)}`);
      const plain = rouge(c.prediction, c.references, { types: ['rouge1'] }).rouge1;
      if (plain.fmeasure !== got.rouge1.fmeasure) changed++;
    }
    // the cases are chosen so that stemming matters
    expect(changed).toBeGreaterThan(FIXTURE.rouge.length / 2);
  });

  it('true is the Porter stemmer, false and a custom function work as before', () => {
    const pred = 'The cats were running quickly';
    const ref = 'a cat runs quick';
    expect(rouge(pred, ref, { stemmer: true })).toEqual(rouge(pred, ref, { stemmer: 'porter' }));
    expect(rouge(pred, ref, { stemmer: porterStem })).toEqual(rouge(pred, ref, { stemmer: 'porter' }));
    expect(rouge(pred, ref, { stemmer: false })).toEqual(rouge(pred, ref));
    expect(rouge(pred, ref, { stemmer: 'porter' }).rouge1.fmeasure).toBeCloseTo(4 / 9, 15);
    expect(rouge(pred, ref).rouge1.fmeasure).toBeCloseTo(0, 15);
    // a custom stemmer still sees only tokens longer than 3 characters
    const seen: string[] = [];
    rouge(pred, ref, { stemmer: (t) => (seen.push(t), t.slice(0, 3)), types: ['rouge1'] });
    expect(seen.sort()).toEqual(['cats', 'quick', 'quickly', 'running', 'runs', 'were']);
    expect(corpusRouge([pred, pred], [ref, ref], { stemmer: 'porter' })).toEqual(rouge(pred, ref, { stemmer: 'porter' }));
  });

  it('rougeTokenize takes the same stemmer values', () => {
    expect(rougeTokenize('The cats were running!', 'porter')).toEqual(['the', 'cat', 'were', 'run']);
    expect(rougeTokenize('The cats were running!', true)).toEqual(['the', 'cat', 'were', 'run']);
    expect(rougeTokenize('The cats were running!')).toEqual(['the', 'cats', 'were', 'running']);
  });

  it('an unknown stemmer is an error naming the call and the choices', () => {
    expect(() => rouge('a', 'b', { stemmer: 'snowball' as never })).toThrow(/^rouge: stemmer must be 'porter', true, false or a function .*, got 'snowball'/);
    expect(() => corpusRouge(['a'], ['b'], { stemmer: 'snowball' as never })).toThrow(/^corpusRouge: stemmer must be/);
    expect(() => rougeTokenize('a', 'lancaster' as never)).toThrow(/^rougeTokenize: stemmer must be/);
  });
});
