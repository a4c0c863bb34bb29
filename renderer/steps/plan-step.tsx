// Step 4: who trains which layers. The core predicts the plan for the chosen phones, model, method and base-weight
// format (memory per phone against its budget, time per micro-batch, the simulated step); the user may move layers
// between neighbouring phones and sees the prediction follow. Nothing is sent to a phone here.
import { useEffect } from 'react';
import type { StepProps } from '../app.js';
import type { PlanPreview, PlanPreviewStage } from '../../electron/core/api/contract.js';
import type { WeightFormat } from '../../electron/core/model/quantize.js';
import { planTraining } from '../actions.js';
import { formatBytes, formatMs } from '../format.js';
import { HeadsMap } from '../heads-map.js';
import { deviceOf, phoneName } from '../device-cards.js';
import { currentPlanKey, selectedReady, type TrainMode, type WizardState } from '../state.js';

// Labels for the base-weight formats; the core validates the value (contract.ts).
const BASE_WEIGHT_CHOICES: ReadonlyArray<readonly [WeightFormat, string]> = [
  ['f32', 'f32 (exact)'],
  ['f16', 'f16'],
  ['int8', 'int8'],
  ['q4_0', '4-bit (q4_0)'],
  ['fp4', '4-bit (fp4)'],
];

/** Typing in a setting re-plans after a short pause rather than on every keystroke. */
const REPLAN_DEBOUNCE_MS = 150;

// Colours of the phones' segments in the layer map (cycled); the table's swatches use the same.
const STAGE_COLOURS = ['#2f6fde', '#c2410c', '#1a7f37', '#8250df', '#9a6700', '#0e7490', '#be185d', '#4d7c0f'];
const colourOf = (i: number) => STAGE_COLOURS[i % STAGE_COLOURS.length]!;

export function PlanStep({ state, dispatch, api }: StepProps) {
  const p = state.plan;
  const key = currentPlanKey(state);
  const phones = selectedReady(state);

  useEffect(() => {
    if (p.previewKey === key && !p.busy) return;
    const timer = setTimeout(() => void planTraining(api, dispatch, state), REPLAN_DEBOUNCE_MS);
    return () => clearTimeout(timer);
    // The key holds every input of the request; `state` itself changes far more often.
  }, [api, key]);

  // The last numbers stay on screen (dimmed) while new ones are on their way.
  const preview = p.preview;
  const stale = p.previewKey !== key;
  return (
    <section className="step">
      <div className="step-head wrap">
        <div className="head-text">
          <h2>Plan</h2>
          <p className="lead">
            Each phone trains a contiguous range of layers; activations flow from one to the next. The split below
            balances the phones' speed within their memory. Move layers with − and + to try another split.
          </p>
        </div>
        <div className="actions">
          <label className="inline" title="Backprop learns faster; P-RGE needs only forward passes (no activations kept, less memory)">
            <span className="label">Method</span>
            <select value={state.train.mode} onChange={(e) => dispatch({ type: 'train-mode', mode: e.target.value as TrainMode })}>
              <option value="backprop">Backprop (LoRA, AdamW)</option>
              <option value="zo">P-RGE (forward-only)</option>
            </select>
          </label>
          <label className="inline" title="How the frozen base weights are stored on the phones: 4-bit needs about 1/7 of f32's memory">
            <span className="label">Base weights</span>
            <select value={state.train.weightFormat} onChange={(e) => dispatch({ type: 'train-weight-format', weightFormat: e.target.value as WeightFormat })}>
              {BASE_WEIGHT_CHOICES.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>

      {p.error && (
        <p className="error" role="alert" data-testid="plan-error">
          {p.error}
        </p>
      )}
      {p.error && p.layout && (
        <button type="button" onClick={() => dispatch({ type: 'plan-reset' })}>
          Back to the suggested split
        </button>
      )}

      {preview && !p.error && (
        <>
          <PlanSummary preview={preview} stale={stale} phones={phones.length} />
          <LayerMap state={state} preview={preview} />
          <table className="table plan-table" aria-label="Plan per phone" data-testid="plan-table">
            <thead>
              <tr>
                <th>Stage</th>
                <th>Phone</th>
                <th>Layers</th>
                <th>Memory (predicted of budget)</th>
                <th className="num">Forward / backward</th>
                <th className="num">Waiting</th>
                <th>Heads by backend</th>
              </tr>
            </thead>
            <tbody>
              {preview.stages.map((st, i) => (
                <StageRow key={st.serial} state={state} stage={st} index={i} count={preview.stages.length} dispatch={dispatch} />
              ))}
            </tbody>
          </table>
          {preview.leftOut.length > 0 && (
            <ul className="hint left-out" data-testid="plan-left-out">
              {preview.leftOut.map((x) => (
                <li key={x.serial}>
                  Not used: <b>{phoneName(state, x.serial)}</b> <span className="mono">{x.serial}</span>: {x.reason}
                </li>
              ))}
            </ul>
          )}
          <div className="row center plan-options">
            <label className="inline" title="After deploying, the run measures every phone (PROFILE) and redeploys if a re-plan on the measured speeds is predicted more than 10% faster">
              <input type="checkbox" checked={p.replan} onChange={(e) => dispatch({ type: 'plan-replan', replan: e.target.checked })} />
              <span className="label">Re-plan from measured speeds when clearly faster</span>
            </label>
            <span className="grow" />
            {p.layout && (
              <button type="button" onClick={() => dispatch({ type: 'plan-reset' })}>
                Back to the suggested split
              </button>
            )}
          </div>
          <p className="hint">
            {preview.source === 'given' ? 'Your split' : 'Suggested split'}: {preview.assumption}. The GPU share of each
            phone's heads is chosen after that measurement, on phones whose GPU is separate from the CPU.
          </p>
        </>
      )}
      {!preview && !p.error && <p className="empty">Working out the plan…</p>}
    </section>
  );
}

function PlanSummary({ preview, stale, phones }: { preview: PlanPreview; stale: boolean; phones: number }) {
  const used = preview.stages.length;
  return (
    <div className={`stats${stale ? ' stale' : ''}`} aria-busy={stale} data-testid="plan-summary">
      <div className="stat wide-stat">
        <span className="stat-label">Predicted step</span>
        <span className="stat-value" data-testid="plan-step-ms">
          {formatMs(preview.stepMs)}
        </span>
        <span className="stat-sub">
          {preview.settings.microBatches} micro-batches of {preview.settings.microBatchSize}×{preview.settings.seqLen} tokens
        </span>
      </div>
      <div className="stat">
        <span className="stat-label">Tokens/s</span>
        <span className="stat-value">{preview.tokensPerSec.toFixed(0)}</span>
        <span className="stat-sub">predicted</span>
      </div>
      <div className="stat">
        <span className="stat-label">Pipeline bubble</span>
        <span className="stat-value">{(preview.bubble * 100).toFixed(0)}%</span>
        <span className="stat-sub">1F1B theory {(preview.theoreticalBubble * 100).toFixed(0)}%</span>
      </div>
      <div className="stat">
        <span className="stat-label">Phones used</span>
        <span className="stat-value">
          {used}
          <span className="stat-of"> / {phones}</span>
        </span>
        <span className="stat-sub">{used} stage{used === 1 ? '' : 's'}</span>
      </div>
    </div>
  );
}

/** The whole model as one bar, a segment per phone in layer order, sized by its layer count. */
function LayerMap({ state, preview }: { state: WizardState; preview: PlanPreview }) {
  const total = preview.stages.reduce((n, s) => n + s.layerEnd - s.layerStart, 0);
  return (
    <div className="layer-map" aria-label="Layers per phone" data-testid="layer-map">
      {preview.stages.map((st, i) => {
        const n = st.layerEnd - st.layerStart;
        return (
          <div key={st.serial} className="layer-seg" style={{ flexGrow: n, flexBasis: 0, background: colourOf(i) }} title={`${phoneName(state, st.serial)}: layers ${st.layerStart}–${st.layerEnd - 1}`}>
            <span>
              {st.hasEmbedding ? 'emb · ' : ''}
              {n === 1 ? `L${st.layerStart}` : `L${st.layerStart}–${st.layerEnd - 1}`}
              {st.hasHead ? ' · head' : ''}
            </span>
          </div>
        );
      })}
      <span className="sr-only">{total} layers</span>
    </div>
  );
}

function StageRow({ state, stage, index, count, dispatch }: { state: WizardState; stage: PlanPreviewStage; index: number; count: number; dispatch: StepProps['dispatch'] }) {
  const model = state.model.summary;
  const n = stage.layerEnd - stage.layerStart;
  // + takes a layer from the neighbour (the next stage; the last stage takes from the previous); − gives one back.
  const neighbour = index < count - 1 ? index + 1 : index - 1;
  const neighbourLayers = (state.plan.layout ?? state.plan.preview?.stages)?.[neighbour];
  const canGrow = count > 1 && neighbourLayers !== undefined && neighbourLayers.layerEnd - neighbourLayers.layerStart > 1;
  const canShrink = count > 1 && n > 1;
  const m = stage.memory;
  const parts: Array<[string, number, string]> = [
    ['weights', m.weightBytes, 'mem-weights'],
    ['LoRA + optimizer', m.loraBytes, 'mem-lora'],
    ['activations', m.activationBytes, 'mem-acts'],
    ['scratch', m.scratchBytes, 'mem-scratch'],
    ['agent', m.overheadBytes, 'mem-agent'],
  ];
  const scale = Math.max(stage.budgetBytes, stage.predictedBytes);
  const info = deviceOf(state, stage.serial);
  return (
    <tr data-testid="plan-stage" className={stage.fits ? undefined : 'over-budget'}>
      <td>
        <span className="swatch" style={{ background: colourOf(index) }} /> {index + 1}
      </td>
      <td>
        <div>{phoneName(state, stage.serial)}</div>
        <div className="mono sub">{stage.serial}</div>
        {info?.soc && <div className="sub">{info.soc}</div>}
      </td>
      <td className="nowrap">
        <div className="stepper">
          <button type="button" aria-label={`one layer less on stage ${index + 1}`} disabled={!canShrink} onClick={() => dispatch({ type: 'plan-layer-moved', index, delta: -1 })}>
            −
          </button>
          <span className="stepper-value" data-testid="plan-layers">
            {n}
          </span>
          <button type="button" aria-label={`one layer more on stage ${index + 1}`} disabled={!canGrow} onClick={() => dispatch({ type: 'plan-layer-moved', index, delta: 1 })}>
            +
          </button>
        </div>
        <div className="sub">
          {n === 1 ? `layer ${stage.layerStart}` : `layers ${stage.layerStart}–${stage.layerEnd - 1}`}
          {stage.hasEmbedding && <span className="tag">embedding</span>}
          {stage.hasHead && <span className="tag">head</span>}
        </div>
      </td>
      <td className="mem-cell">
        <div className="mem-bar" title={parts.map(([label, bytes]) => `${label} ${formatBytes(bytes)}`).join(', ')}>
          {parts.map(([label, bytes, cls]) => (
            <div key={label} className={cls} style={{ width: `${(bytes / scale) * 100}%` }} />
          ))}
          <div className="mem-budget" style={{ left: `${(stage.budgetBytes / scale) * 100}%` }} />
        </div>
        <div className={stage.fits ? 'sub' : 'sub bad-text'} data-testid="plan-memory">
          {formatBytes(stage.predictedBytes)} of {formatBytes(stage.budgetBytes)}
          {!stage.fits && ' — over budget'}
        </div>
      </td>
      <td className="num">
        {formatMs(stage.forwardMs)} / {stage.backwardMs > 0 ? formatMs(stage.backwardMs) : '–'}
        {stage.transferMs > 0 && <div className="sub">+ {formatMs(stage.transferMs)} transfer</div>}
      </td>
      <td className="num">{Math.round(stage.idleFraction * 100)}%</td>
      <td className="heads-cell">
        {model ? (
          <HeadsMap layerStart={stage.layerStart} layerEnd={stage.layerEnd} numHeads={model.numHeads} numKvHeads={model.numKvHeads} gpuKvGroups={0} gpuMlpFraction={0} gpuName={null} />
        ) : (
          <span className="sub">–</span>
        )}
      </td>
    </tr>
  );
}
