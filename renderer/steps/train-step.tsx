// Step 5: start a run on the chosen phones with the Plan step's split and watch it live (phase, loss and tokens/s
// curves, the pipeline, one card per phone); pause, go on or stop it. It shows the core's events as they arrive.
import type { StepProps } from '../app.js';
import { pauseTraining, startTraining, stopTraining } from '../actions.js';
import { formatLoss, formatMs } from '../format.js';
import { LossChart, ThroughputChart } from '../step-chart.js';
import { PipelineGantt } from '../pipeline-gantt.js';
import { DeviceCards, phoneName } from '../device-cards.js';
import { MAX_STEPS, isTraining, parseWhole, selectedReady } from '../state.js';

/** Time left in the largest sensible unit: "45 s", "12 min", "2 h 5 min". */
function formatEta(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  return min < 90 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

const STATUS_TEXT = {
  idle: 'Not started',
  starting: 'Starting',
  running: 'Training',
  pausing: 'Pausing',
  paused: 'Paused',
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
            {phones.length} phone{phones.length === 1 ? '' : 's'}, {t.mode === 'zo' ? 'forward-only P-RGE' : 'backprop (1F1B, AdamW)'}, {t.weightFormat} base
            weights{state.plan.preview ? `, ${state.plan.preview.stages.length} pipeline stage${state.plan.preview.stages.length === 1 ? '' : 's'} as planned` : ''}.
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
          <label className="inline" title="Stage files stay on the phones by default, so the next run with the same model and split skips the push">
            <input
              type="checkbox"
              checked={t.removeStageFiles}
              disabled={running}
              onChange={(e) => dispatch({ type: 'train-remove-stage-files', remove: e.target.checked })}
            />
            <span className="label">Remove weights from phones afterwards</span>
          </label>
          {running && (
            <button
              type="button"
              disabled={t.runId === null || t.status === 'stopping' || t.status === 'starting' || t.status === 'pausing'}
              onClick={() => t.runId && void pauseTraining(api, dispatch, t.runId, t.status !== 'paused')}
            >
              {t.status === 'paused' ? 'Resume' : t.status === 'pausing' ? 'Pausing…' : 'Pause'}
            </button>
          )}
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
