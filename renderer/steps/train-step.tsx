// Step 4: start a run on the chosen phones and watch it live (phase, loss curve, tokens/s, one card per phone).
// It does not plan or schedule anything; it shows the core's events as they arrive.
import type { StepProps } from '../app.js';
import type { WeightFormat } from '../../electron/core/model/quantize.js';
import { startTraining, stopTraining } from '../actions.js';
import { formatBytes, formatLoss, formatMs, formatPush } from '../format.js';
import { LossChart, ThroughputChart } from '../step-chart.js';
import { PipelineGantt } from '../pipeline-gantt.js';
import { MAX_STEPS, isTraining, parseWhole, selectedReady, type TrainMode, type WizardState } from '../state.js';

// Labels for the base-weight formats; the core validates the value (contract.ts).
const BASE_WEIGHT_CHOICES: ReadonlyArray<readonly [WeightFormat, string]> = [
  ['f32', 'f32 (exact)'],
  ['f16', 'f16'],
  ['int8', 'int8'],
  ['q4_0', '4-bit (q4_0)'],
  ['fp4', '4-bit (fp4)'],
];

/** Time left in the largest sensible unit: "45 s", "12 min", "2 h 5 min". */
function formatEta(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  return min < 90 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** A phone's name for labels ("Google Pixel 7"), or its serial when the device list does not know it. */
function phoneName(state: WizardState, serial: string): string {
  const info = state.devices.list.find((d) => d.serial === serial);
  return info ? [info.manufacturer, info.model].filter(Boolean).join(' ') || serial : serial;
}

const STATUS_TEXT = {
  idle: 'Not started',
  starting: 'Starting',
  running: 'Training',
  stopping: 'Stopping',
  finished: 'Finished',
  stopped: 'Stopped',
  failed: 'Failed',
} as const;

export function TrainStep({ state, dispatch, api }: StepProps) {
  const t = state.train;
  const running = isTraining(t);
  const stepsValid = parseWhole(t.stepsText, 1, MAX_STEPS) !== null;
  const phones = selectedReady(state);
  const progress = t.totalSteps > 0 ? Math.min(1, t.step / t.totalSteps) : 0;
  const lastLoss = t.losses.length > 0 ? t.losses[t.losses.length - 1]! : null;

  return (
    <section className="step">
      <div className="step-head wrap">
        <div className="head-text">
          <h2>Train</h2>
          <p className="lead">
            LoRA fine-tuning of <span className="mono">{state.model.summary?.modelType ?? 'the model'}</span> on{' '}
            {phones.length} phone{phones.length === 1 ? '' : 's'}.
          </p>
        </div>
        <form
          className="actions"
          onSubmit={(e) => {
            e.preventDefault();
            if (!running) void startTraining(api, dispatch, state);
          }}
        >
          <label className="inline">
            <span className="label">Steps</span>
            <input
              type="number"
              min={1}
              max={MAX_STEPS}
              className="narrow"
              value={t.stepsText}
              disabled={running}
              aria-invalid={!stepsValid}
              onChange={(e) => dispatch({ type: 'train-steps', text: e.target.value })}
            />
          </label>
          <label className="inline" title="Backprop learns faster; P-RGE needs only forward passes (no activations kept, less memory)">
            <span className="label">Method</span>
            <select value={t.mode} disabled={running} onChange={(e) => dispatch({ type: 'train-mode', mode: e.target.value as TrainMode })}>
              <option value="backprop">Backprop (LoRA, AdamW)</option>
              <option value="zo">P-RGE (forward-only)</option>
            </select>
          </label>
          <label className="inline">
            <span className="label">Base weights</span>
            <select
              value={t.weightFormat}
              disabled={running}
              onChange={(e) => dispatch({ type: 'train-weight-format', weightFormat: e.target.value as WeightFormat })}
            >
              {BASE_WEIGHT_CHOICES.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <label className="inline" title="Stage files stay on the phones by default, so the next run with the same model and split skips the push">
            <input
              type="checkbox"
              checked={t.removeStageFiles}
              disabled={running}
              onChange={(e) => dispatch({ type: 'train-remove-stage-files', remove: e.target.checked })}
            />
            <span className="label">Remove weights from phones afterwards</span>
          </label>
          {running ? (
            <button
              type="button"
              className="danger"
              disabled={t.status === 'stopping' || t.runId === null}
              onClick={() => t.runId && void stopTraining(api, dispatch, t.runId)}
            >
              {t.status === 'stopping' ? 'Stopping…' : 'Stop'}
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!stepsValid || phones.length === 0}>
              {t.runId ? 'Train again' : 'Start training'}
            </button>
          )}
        </form>
      </div>

      {t.error && (
        <p className="error" role="alert">
          {t.error}
        </p>
      )}

      <div className="stats" aria-live="polite">
        <div className="stat wide-stat">
          <span className="stat-label">Status</span>
          <span className={`stat-value status-${t.status}`} data-testid="train-status">
            {STATUS_TEXT[t.status]}
          </span>
          <span className="stat-sub" data-testid="train-phase">
            {[t.phase !== STATUS_TEXT[t.status] ? t.phase : '', t.phaseDetail].filter(Boolean).join(' · ')}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Step</span>
          <span className="stat-value">
            {t.step}
            <span className="stat-of"> / {t.totalSteps || parseWhole(t.stepsText, 1, MAX_STEPS) || '–'}</span>
          </span>
          <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(progress * 100)}>
            <div style={{ width: `${progress * 100}%` }} />
          </div>
          <span className="stat-sub" data-testid="train-eta">
            {[
              t.etaMs !== null && running && t.step < t.totalSteps ? `${formatEta(t.etaMs)} left` : '',
              t.stepMs !== null ? `${formatMs(t.stepMs)}/step` : '',
            ]
              .filter(Boolean)
              .join(' · ')}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Loss</span>
          <span className="stat-value">{formatLoss(lastLoss)}</span>
          <span className="stat-sub">
            {t.evalBefore !== null && `eval before ${formatLoss(t.evalBefore)}`}
            {t.evalAfter !== null && ` · after ${formatLoss(t.evalAfter)}`}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Tokens/s</span>
          <span className="stat-value">{t.tokPerSec === null ? '–' : t.tokPerSec.toFixed(1)}</span>
          <span className="stat-sub">{t.lr === null ? '' : `lr ${t.lr.toExponential(1)}`}</span>
        </div>
      </div>

      <div className="train-grid">
        <div className="card">
          <h3>Loss</h3>
          <LossChart steps={t.lossSteps} losses={t.losses} />
          <h3 className="sub-head">Tokens/s</h3>
          <ThroughputChart steps={t.tokSteps} tokPerSec={t.tokPerSecs} />
        </div>
        <div className="card">
          <h3>Phones</h3>
          <DeviceCards state={state} />
        </div>
      </div>
      <div className="card gantt-card">
        <h3>Pipeline{t.timeline ? ` · step ${t.timeline.step}` : ''}</h3>
        <PipelineGantt
          step={t.timeline?.step ?? 0}
          spans={t.timeline?.spans ?? []}
          rows={(t.plan?.stages ?? []).map((st, i) => ({ stage: i, serial: st.serial, label: phoneName(state, st.serial) }))}
        />
      </div>
      {t.runDir && (
        <p className="hint">
          Run folder: <span className="mono">{t.runDir}</span>
        </p>
      )}
    </section>
  );
}

function DeviceCards({ state }: { state: WizardState }) {
  const t = state.train;
  const serials = t.plan ? t.plan.stages.map((s) => s.serial) : selectedReady(state);
  const numLayers = state.model.summary?.numLayers ?? null;
  if (serials.length === 0) return <p className="hint">No phones selected.</p>;
  return (
    <ul className="device-cards" aria-label="Phones in this run">
      {serials.map((serial) => {
        const info = state.devices.list.find((d) => d.serial === serial);
        const stage = t.plan?.stages.find((s) => s.serial === serial);
        const live = t.devices[serial];
        const push = t.push[serial];
        const total = info?.ramTotalBytes ?? 0;
        const used = live?.rssBytes ?? 0;
        const peak = live?.peakRssBytes ?? 0;
        // The planning phase's prediction; a re-opened run only has the plan's copy of the same number.
        const planned = t.plannedBytes[serial] ?? stage?.predictedBytes ?? 0;
        const pct = (v: number) => (total > 0 ? Math.min(100, (v / total) * 100) : 0);
        return (
          <li key={serial} className="device-card" data-testid="device-card">
            <div className="device-top">
              <span className="device-name">{info ? phoneName(state, serial) : 'Phone'}</span>
              <span className="mono sub">{serial}</span>
            </div>
            <div className="device-line" title={stage ? `layers [${stage.layerStart}, ${stage.layerEnd})` : undefined}>
              {stage ? (
                <>
                  Layers {stage.layerStart}–{stage.layerEnd - 1}
                  {numLayers !== null && <span className="sub"> of {numLayers}</span>}
                  {stage.hasEmbedding && <span className="tag">embedding</span>}
                  {stage.hasHead && <span className="tag">head</span>}
                </>
              ) : (
                <span className="sub">Waiting for the plan</span>
              )}
            </div>
            <div className="ram" aria-label={`RAM used on ${serial}`}>
              <div className="ram-bar">
                <div className="ram-used" style={{ width: `${pct(used)}%` }} />
                {planned > 0 && <div className="ram-planned" style={{ left: `${pct(planned)}%` }} title={`planned ${formatBytes(planned)}`} />}
                {peak > 0 && <div className="ram-peak" style={{ left: `${pct(peak)}%` }} title={`peak ${formatBytes(peak)}`} />}
              </div>
              <span className="sub" data-testid="ram-text">
                {[
                  (live ? `${formatBytes(used)} used` : 'RAM') + (total > 0 ? ` of ${formatBytes(total)}` : ''),
                  peak > used ? `peak ${formatBytes(peak)}` : '',
                  planned > 0 ? `planned ${formatBytes(planned)}` : '',
                ]
                  .filter(Boolean)
                  .join(' · ')}
              </span>
            </div>
            <div className="device-line sub">
              {live ? `busy ${formatMs(live.busyMs)} · step ${live.step}` : push ? formatPush(push) : 'idle'}
            </div>
          </li>
        );
      })}
    </ul>
  );
}
