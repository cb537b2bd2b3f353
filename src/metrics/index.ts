/**
 * Evaluation metrics: perplexity, classification (accuracy, top-k, precision / recall / F1,
 * confusion matrix), SQuAD exact match and token F1, sacreBLEU-compatible BLEU, ROUGE (with
 * NLTK's Porter stemmer, as rouge-score's `use_stemmer`), and a latency / throughput meter.
 * Each file names the reference implementation it agrees with.
 * @module
 */
export {
  perplexity,
  perplexityFromSum,
  perplexityFromLogits,
  PerplexityMeter,
  type Scalar,
  type PerplexityResult,
  type PerplexityFromLogitsOptions,
} from './perplexity.js';
export {
  accuracy,
  topKAccuracy,
  argmaxRows,
  confusionMatrix,
  precisionRecallF1,
  f1Score,
  classificationReport,
  type Label,
  type Labels,
  type Scores,
  type Average,
  type AccuracyOptions,
  type TopKAccuracyOptions,
  type ConfusionMatrix,
  type ConfusionMatrixOptions,
  type PRF,
  type PRFOptions,
  type PerClassPRF,
  type ClassificationReport,
} from './classification.js';
export { normalizeAnswer, exactMatch, tokenF1, squadScores, type SquadScores } from './qa.js';
export {
  corpusBleu,
  sentenceBleu,
  computeBleu,
  tokenize13a,
  tokenizeIntl,
  tokenizeChars,
  type BleuOptions,
  type BleuScore,
  type BleuStats,
  type BleuSmoothing,
  type BleuTokenizer,
} from './bleu.js';
export {
  rouge,
  corpusRouge,
  rougeTokenize,
  lcsLength,
  type RougeType,
  type RougeScore,
  type RougeOptions,
  type RougeStemmer,
} from './rouge.js';
export { porterStem } from './porter.js';
export {
  ThroughputMeter,
  percentile,
  type ThroughputMeterOptions,
  type ThroughputSummary,
  type StepTimes,
} from './throughput.js';
export { ensembleLogits, evaluateEnsemble, type EnsembleMode, type EnsembleMember, type EvaluableMember, type EnsembleOptions, type EvaluateEnsembleOptions, type EnsembleResult, type TokenStream } from './ensemble.js';
export { meteorScore, meteorAlign, corpusMeteor, type MeteorOptions, type MeteorAlignment, type MeteorSynonyms, type MeteorStemmer } from './meteor.js';
export {
  demographicParityDifference,
  demographicParityRatio,
  equalizedOddsDifference,
  equalizedOddsRatio,
  counterfactualSwaps,
  type FairnessLabel,
  type DisparityMethod,
  type DemographicParityOptions,
  type EqualizedOddsOptions,
  type CounterfactualModel,
  type CounterfactualTokenizer,
  type CounterfactualOptions,
  type CounterfactualItem,
  type CounterfactualPairSummary,
  type CounterfactualResult,
} from './fairness.js';
export { auditTokens, tokenCounts, escapeToken, type TokenAudit, type TokenAuditEntry, type TokenAuditOptions, type TokenAuditModel, type TokenAuditTokenizer } from './token_audit.js';
