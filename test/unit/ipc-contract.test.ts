// Unit tests for the shared API contract (electron/core/api/contract.ts): validation messages and the dispatcher.
// Not a test of any real service; the service here is a few inline functions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ApiError,
  dispatchCall,
  methodNames,
  validateCall,
  type ConfidantService,
} from '../../electron/core/api/contract.js';

test('every method named in the brief is in the contract', () => {
  assert.deepEqual([...methodNames].sort(), [
    'defaults',
    'exportAdapter',
    'generate',
    'inspectModel',
    'listDevices',
    'listRuns',
    'openRun',
    'pauseTraining',
    'planTraining',
    'previewDataset',
    'probeDevice',
    'startTraining',
    'startVirtualPhones',
    'stopGenerate',
    'stopTraining',
  ]);
});

test('validateCall returns parsed params and treats missing params as {}', () => {
  assert.deepEqual(validateCall('listDevices', undefined), {});
  assert.deepEqual(validateCall('startVirtualPhones', { count: 2 }), { count: 2 });
  assert.deepEqual(validateCall('inspectModel', { path: '  models/x  ' }), { path: 'models/x' });
  assert.deepEqual(validateCall('generate', { runId: null, prompt: 'hi', maxTokens: 8 }), {
    runId: null,
    prompt: 'hi',
    maxTokens: 8,
  });
});

test('validateCall rejects unknown methods, naming the known ones', () => {
  assert.throws(
    () => validateCall('rm -rf', {}),
    (err: unknown) =>
      err instanceof ApiError && err.code === 'unknown-method' && /unknown method 'rm -rf'/.test(err.message) &&
      err.message.includes('startTraining'),
  );
  // Prototype keys are not methods.
  assert.throws(() => validateCall('constructor', {}), (err: unknown) => err instanceof ApiError && err.code === 'unknown-method');
  assert.throws(() => validateCall('toString', {}), (err: unknown) => err instanceof ApiError && err.code === 'unknown-method');
});

test('validateCall names the method and every bad field', () => {
  const check = (method: string, params: unknown, ...parts: RegExp[]) =>
    assert.throws(
      () => validateCall(method, params),
      (err: unknown) => {
        assert.ok(err instanceof ApiError, 'ApiError');
        assert.equal(err.code, 'bad-params');
        assert.ok(err.message.startsWith(`${method}: `), err.message);
        for (const p of parts) assert.match(err.message, p);
        return true;
      },
    );
  check('startVirtualPhones', { count: 'two' }, /count: count must be a whole number/);
  check('startVirtualPhones', { count: 0 }, /at least 1/);
  check('startVirtualPhones', { count: 2.5 }, /whole number/);
  check('startVirtualPhones', { count: 2, extra: true }, /extra/);
  check('inspectModel', { path: '   ' }, /model path is empty/);
  check('startTraining', { modelPath: 'm', datasetPath: 'd', serials: [], steps: 0 }, /select at least one device/, /steps/);
  check('startTraining', { modelPath: 'm', datasetPath: 'd', serials: ['a'], steps: 1, weightFormat: 'q3' }, /weightFormat must be one of f32, f16, int8, q4_0, fp4/);
  check('planTraining', { modelPath: 'm', serials: ['a'], seqLen: 4 }, /seqLen must be at least 8/);
  check('planTraining', { modelPath: 'm', serials: ['a'], layout: [] }, /layout needs at least one stage/);
  check('planTraining', { modelPath: 'm', serials: ['a'], layout: [{ serial: 'a', layerStart: -1, layerEnd: 2.5 }] }, /layout\.0\.layerStart: layerStart must be at least 0/, /layout\.0\.layerEnd: layerEnd must be a whole number/);
  check('startTraining', { modelPath: 'm', datasetPath: 'd', serials: ['a'], steps: 1, layout: [{ serial: 'a', layerStart: 0, layerEnd: 2, extra: 1 }] }, /extra/);
  check('startTraining', { modelPath: 'm', datasetPath: 'd', serials: ['a'], steps: 1, replan: 'no' }, /replan must be true or false/);
  check('pauseTraining', { runId: 'r' }, /paused must be true or false/);
  check('exportAdapter', { runId: 'r', format: 'onnx', outDir: 'o' }, /format must be 'peft', 'gguf' or 'merged'/);
  check('generate', { runId: 'r', prompt: 'p', maxTokens: 1e6 }, /maxTokens must be at most 4096/);
  check('listRuns', 'not an object');
});

function stubService(overrides: Partial<ConfidantService>): ConfidantService {
  const fail = () => Promise.reject(new Error('not stubbed'));
  return {
    listDevices: fail,
    probeDevice: fail,
    stopGenerate: fail,
    openRun: fail,
    startVirtualPhones: fail,
    inspectModel: fail,
    previewDataset: fail,
    planTraining: fail,
    startTraining: fail,
    stopTraining: fail,
    pauseTraining: fail,
    listRuns: fail,
    exportAdapter: fail,
    generate: fail,
    defaults: fail,
    onEvent: () => () => {},
    ...overrides,
  };
}

test('dispatchCall passes validated params to the service and wraps results and failures', async () => {
  const seen: unknown[] = [];
  const service = stubService({
    async inspectModel(p) {
      seen.push(p);
      return { path: p.path, modelType: 'llama', numLayers: 5, hiddenSize: 64, intermediateSize: 172, vocabSize: 512, paramCount: 260000, source: 'hf' as const, numHeads: 8, numKvHeads: 4, storage: [['F32', 260_000]] as [string, number][], ropeScaling: null, slidingWindow: null, tiedEmbeddings: true, attentionBias: false };
    },
    async stopTraining() {},
    async previewDataset() {
      throw new Error('dataset.jsonl not found: check the path');
    },
  });
  const ok = await dispatchCall(service, 'inspectModel', { path: ' m ' });
  assert.deepEqual(seen, [{ path: 'm' }]);
  assert.equal(ok.ok && (ok.result as { numLayers: number }).numLayers, 5);
  assert.deepEqual(await dispatchCall(service, 'stopTraining', { runId: 'r1' }), { ok: true, result: null });
  assert.deepEqual(await dispatchCall(service, 'previewDataset', { path: 'x' }), {
    ok: false,
    error: { code: 'failed', message: 'dataset.jsonl not found: check the path' },
  });
  const bad = await dispatchCall(service, 'inspectModel', {});
  assert.equal(!bad.ok && bad.error.code, 'bad-params');
  assert.deepEqual(seen.length, 1, 'the service is not called with bad params');
});
