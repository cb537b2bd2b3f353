/** The generated bad-input suite over the token audit, energy meter, evaluation report and labelling server (see test/bad_inputs/sweep.ts). */
import { auditTokens, escapeToken, tokenCounts } from '../src/metrics/token_audit.js';
import { EnergyMeter, formatEnergy } from '../src/train/energy.js';
import { evalReport } from '../src/cli/report.js';
import { startLabelServer } from '../src/cli/label.js';
import { runTable } from './bad_inputs/sweep.js';
import { TOOLS18_TABLE } from './bad_inputs/tools18.js';

runTable('tools18', TOOLS18_TABLE, { auditTokens, escapeToken, tokenCounts, EnergyMeter, formatEnergy, evalReport, startLabelServer });
