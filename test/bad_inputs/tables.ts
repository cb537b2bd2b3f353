/** Every bad-input table, by module (coverage.test.ts checks that together they cover every export). */
import { BACKEND_TABLE } from './backend.js';
import { DATA_TABLE } from './data.js';
import { DISTRIBUTED_TABLE } from './distributed.js';
import { MOE_TABLE } from './moe.js';
import { COMPRESS_TABLE } from './compress.js';
import { BERT_TABLE } from './bert.js';
import { FINETUNE_TABLE } from './finetune.js';
import { IO_TABLE } from './io.js';
import { METRICS_TABLE } from './metrics.js';
import { NN_TABLE } from './nn.js';
import { OPTIM_TABLE } from './optim.js';
import type { Table } from './sweep.js';
import { TENSOR_TABLE } from './tensor.js';
import { TRAIN_TABLE } from './train.js';
import { QUANTIZE_TABLE } from './quantize.js';
import { EVAL18_TABLE } from './eval18.js';
import { TOOLS18_TABLE } from './tools18.js';
import { SEARCH18_TABLE } from './search18.js';
import { DATA18_TABLE } from './data18.js';
import { LEARN18_TABLE } from './learn18.js';
import { TOKENS13_TABLE } from './tokens13.js';

export const TABLES: Record<string, Table> = {
  tensor: TENSOR_TABLE,
  nn: NN_TABLE,
  optim: OPTIM_TABLE,
  data: DATA_TABLE,
  io: IO_TABLE,
  metrics: METRICS_TABLE,
  train: TRAIN_TABLE,
  backend: BACKEND_TABLE,
  finetune: FINETUNE_TABLE,
  distributed: DISTRIBUTED_TABLE,
  moe: MOE_TABLE,
  compress: COMPRESS_TABLE,
  bert: BERT_TABLE,
  quantize: QUANTIZE_TABLE,
  eval18: EVAL18_TABLE,
  tools18: TOOLS18_TABLE,
  search18: SEARCH18_TABLE,
  data18: DATA18_TABLE,
  learn18: LEARN18_TABLE,
  tokens13: TOKENS13_TABLE,
};
