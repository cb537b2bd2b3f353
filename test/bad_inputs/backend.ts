/** Bad-input table: the backend registry, the backends' constructors, dtypes, Philox, faults and host files. */
import { AsyncRefBackend, FaultLatch, PhiloxWords, RefBackend, defaultBackendName, profileKernels, getNumThreads, setBackend, setNumThreads, useBackend } from '../../src/index.js';
import { hostFiles } from '../../src/host.js';
import { choice, func, int, num, opts, scalar, str, type Param, type Table } from './sweep.js';

/** A backend's name: the valid value is the default backend (so the sweep changes nothing). */
const backendName = (o: { optional?: boolean } = {}): Param => ({
  kind: 'backend name',
  good: () => defaultBackendName(),
  refuse: [
    { value: 'bogus', needle: 'bogus' },
    { value: 5, needle: '5' },
    { value: {}, needle: 'object' },
    ...(o.optional ? [] : [{ value: undefined, needle: 'undefined' }]),
  ],
  tolerate: o.optional ? [undefined] : [],
});

const dtypeList = (): Param => ({
  kind: 'dtypes',
  good: () => ['f32', 'f64'],
  refuse: [
    { value: [], needle: '[]' },
    { value: ['f8'], needle: 'f8' },
    { value: 'f32', needle: 'f32' },
    { value: 5, needle: '5' },
  ],
  tolerate: [undefined],
});

const u32 = (good = 1): Param => int({ min: 0, max: 0xffffffff, good });

// registerBackend's sweep registers under a throwaway name, which it then removes again by
// registering nothing else: entries only ever replace their own name.
const entry = (): Param =>
  opts(
    { name: { ...str(() => 'bad-inputs-probe'), refuse: [...str().refuse, { value: '', needle: "''" }] }, priority: num({ good: -5 }), probe: func(() => () => 'never available'), create: func(() => () => new RefBackend('bad-inputs-probe')) },
    { good: () => ({ name: 'bad-inputs-probe', priority: -5, probe: () => 'never available', create: () => new RefBackend('bad-inputs-probe') }), optional: false },
  );

const hostFilesParam = (): Param => ({
  kind: 'host files',
  // the installed Node implementation, so the valid call changes nothing
  good: () => NODE_FILES,
  refuse: [
    { value: 5, needle: '5' },
    { value: undefined, needle: 'undefined' },
    { value: {}, needle: 'readText' },
    { value: () => ({ ...NODE_FILES, writeAtomic: 1 }), needle: 'writeAtomic' },
  ],
});

// The host files the Node entry installed (reinstalling them changes nothing).
const NODE_FILES = hostFiles('bad inputs', 'nothing') as unknown as Record<string, unknown>;

const latch = (): Param => ({ kind: 'instance', good: () => new FaultLatch(), refuse: [] });

export const BACKEND_TABLE: Table = {
  registerBackend: { params: [entry()] },
  backends: { exempt: 'takes no arguments' },
  getBackend: { params: [backendName({ optional: true })] },
  backendSync: { params: [backendName({ optional: true })] },
  useBackend: { params: [backendName()], call: (name: string) => restoring(() => useBackend(name)) },
  setBackend: { params: [{ ...backendName(), tolerate: [null] }], call: (name: string | null) => restoring(() => setBackend(name)) },
  ready: { exempt: 'takes no arguments' },
  sync: { params: [backendName({ optional: true })] },
  flush: { params: [backendName({ optional: true })] },
  profileKernels: { params: [backendName({ optional: true })], call: (name?: string) => profileKernels(name).stop() },
  defaultBackendName: { exempt: 'takes no arguments' },
  RefBackend: { params: [str(() => 'ref-probe', { optional: true })], call: (name?: string) => new RefBackend(name) },
  AsyncRefBackend: { params: [str(() => 'async-probe', { optional: true }), dtypeList()], call: (name?: string, d?: never) => new AsyncRefBackend(name, d) },
  asyncRefEntry: { params: [str(() => 'async-probe', { optional: true }), dtypeList()] },
  CpuBackend: { exempt: 'constructed by cpuEntry() from the loaded native addon; not for users' },
  cpuEntry: { exempt: 'takes no arguments' },
  webgpuEntry: { exempt: 'takes no arguments' },
  CudaBackend: { exempt: 'constructed by cudaEntry() on a machine with a CUDA device; its kernels are checked by test/gpu/ there' },
  cudaEntry: { exempt: 'takes no arguments' },
  browserWebgpuEntry: { exempt: 'takes no arguments' },
  WebGPUBackend: { exempt: 'constructed by requestWebGPU from the device it requested; not for users' },
  requestWebGPU: { exempt: 'its one argument is a GPU object (navigator.gpu); test/webgpu.test.ts refuses non-GPU values' },
  getNumThreads: { exempt: 'takes no arguments' },
  nativeCapabilities: { exempt: 'takes no arguments' },
  setNumThreads: {
    params: [int({ min: 1, max: 1024, good: 1 })],
    call: (n: number) => {
      const before = getNumThreads();
      try {
        setNumThreads(n);
      } finally {
        if (before > 0) setNumThreads(before);
      }
    },
  },
  promoteTypes: { params: [choice(['f32', 'i32']), choice(['f64', 'bool'])] },
  isFloat: { exempt: 'a predicate: any value gives true or false' },
  hasGradRule: { exempt: 'a predicate: any value gives true or false' },
  f16Bits: { params: [{ kind: 'number', good: () => 1.5, refuse: [{ value: 'seven', needle: 'seven' }, { value: null, needle: 'null' }, { value: [1], needle: ['array', '[1]'] }], tolerate: [NaN, Infinity, -0] }] },
  bf16Bits: { params: [{ kind: 'number', good: () => 1.5, refuse: [{ value: 'seven', needle: 'seven' }, { value: null, needle: 'null' }, { value: [1], needle: ['array', '[1]'] }], tolerate: [NaN, Infinity, -0] }] },
  f16Value: { params: [int({ min: 0, max: 0xffff, good: 0x3c00 })] },
  bf16Value: { params: [int({ min: 0, max: 0xffff, good: 0x3f80 })] },
  philox4x32: { params: [u32(), u32(), u32(), u32(), u32(), u32(), { kind: 'words', good: () => new Uint32Array(4), refuse: [{ value: () => new Uint32Array(3), needle: 'Uint32Array' }, { value: [0, 0, 0, 0], needle: ['array', '[0,0,0,0]'] }, { value: null, needle: 'null' }] }] },
  philoxFill: {
    params: [
      { kind: 'out', good: () => new Float64Array(6), refuse: [{ value: null, needle: 'null' }, { value: 5, needle: '5' }] },
      opts({ kind: choice(['uniform', 'normal', 'randint']), low: num({ optional: true }), high: num({ optional: true }) }, { good: () => ({ kind: 'uniform', low: 0, high: 1 }), optional: false, strict: false }),
      int({ min: 0, good: 7 }),
      int({ min: 0, good: 0 }),
    ],
  },
  PhiloxWords: { params: [int({ min: 0, good: 7 }), int({ min: 0, good: 0 })], call: (seed: number, offset: number) => new PhiloxWords(seed, offset) },
  dropoutThreshold: { params: [num({ min: 0, max: 1, good: 0.1 })] },
  FaultLatch: { exempt: 'the constructor takes no arguments; its methods are swept below' },
  'FaultLatch.record': {
    params: [latch(), { ...choice(['index', 'target', 'check', 'overflow']), refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 99, needle: '99' }, { value: null, needle: 'null' }] }, str(() => 'gather'), scalar(7), scalar(5), str(() => '', { optional: true })],
    call: (l: FaultLatch, f: never, op: string, v: number, lim: number, msg?: string) => l.record(f, op, v, lim, msg),
  },
  'FaultLatch.recordError': { params: [latch(), { kind: 'error', good: () => new Error('lost device'), refuse: [{ value: 'lost', needle: 'lost' }, { value: null, needle: 'null' }] }], call: (l: FaultLatch, e: Error) => l.recordError(e) },
  faultMessage: { exempt: 'formats any code (an unknown one says so); backend-internal' },
  installHostFiles: { params: [hostFilesParam()] },
};

/** Run `fn` (which may change the default backend) and restore the default afterwards. */
async function restoring(fn: () => unknown): Promise<unknown> {
  const before = defaultBackendName();
  try {
    return await fn();
  } finally {
    setBackend(before);
  }
}
