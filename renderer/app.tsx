// The wizard frame: header, step bar, the current step, Back/Next with the reason Next is disabled. Owns the one
// useReducer and the event subscription; the steps render state and call actions.ts. No API calls of its own
// beyond start-up (defaults, device list) and the device poll on the first step.
import { useEffect, useReducer, type Dispatch } from 'react';
import type { Api } from './api.js';
import { loadDefaults, refreshDevices } from './actions.js';
import { STEPS, blocker, canVisit, initialState, isDone, reducer, type Action, type StepId, type WizardState } from './state.js';
import { DataStep } from './steps/data-step.js';
import { DevicesStep } from './steps/devices-step.js';
import { ExportStep } from './steps/export-step.js';
import { ModelStep } from './steps/model-step.js';
import { PlanStep } from './steps/plan-step.js';
import { TrainStep } from './steps/train-step.js';
import { TryStep } from './steps/try-step.js';
import { RunsPanel } from './runs-panel.js';

export interface StepProps {
  state: WizardState;
  dispatch: Dispatch<Action>;
  api: Api;
}

const VIEWS: Record<StepId, (p: StepProps) => React.JSX.Element> = {
  devices: DevicesStep,
  model: ModelStep,
  data: DataStep,
  plan: PlanStep,
  train: TrainStep,
  export: ExportStep,
  try: TryStep,
};

/** Plug/unplug/authorise events are pushed ('devices'); the poll keeps RAM, battery and temperatures current. */
const DEVICE_POLL_MS = 10_000;
/** While training, the phone cards' battery and temperature: slower, since every read is an adb shell per phone. */
const TRAIN_POLL_MS = 20_000;

export function App({ api }: { api: Api }) {
  const [state, dispatch] = useReducer(reducer, undefined, initialState);

  useEffect(() => {
    const unsubscribe = api.onEvent((message) => dispatch({ type: 'event', message }));
    void loadDefaults(api, dispatch);
    void refreshDevices(api, dispatch);
    return unsubscribe;
  }, [api]);

  // Phones come and go (cables, authorisation prompts): keep the first step's table current, and the Train step's
  // battery and temperature readings.
  useEffect(() => {
    const every = state.step === 'devices' ? DEVICE_POLL_MS : state.step === 'train' ? TRAIN_POLL_MS : null;
    if (every === null) return;
    const timer = setInterval(() => void refreshDevices(api, dispatch), every);
    return () => clearInterval(timer);
  }, [api, state.step]);

  const View = VIEWS[state.step];
  const index = STEPS.findIndex((s) => s.id === state.step);
  const isLast = index === STEPS.length - 1;
  const why = isLast ? null : blocker(state);

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true" />
          Confidant
        </div>
        <div className="tagline">Private LoRA fine-tuning on the phones on your desk</div>
        <span className="grow" />
        <button type="button" aria-pressed={state.runs.open} onClick={() => dispatch({ type: 'runs-toggled' })}>
          Runs
        </button>
      </header>

      <nav className="stepbar" aria-label="Progress">
        <ol>
          {STEPS.map((s, i) => {
            const current = s.id === state.step;
            const done = isDone(state, s.id);
            const reachable = canVisit(state, s.id);
            return (
              <li key={s.id} className={current ? 'current' : done ? 'done' : ''}>
                <button
                  type="button"
                  aria-current={current ? 'step' : undefined}
                  disabled={!reachable}
                  onClick={() => dispatch({ type: 'go', step: s.id })}
                >
                  <span className="dot">{done && !current ? '✓' : i + 1}</span>
                  <span className="step-title">{s.title}</span>
                </button>
              </li>
            );
          })}
        </ol>
      </nav>

      <main className="panel">
        {state.runs.open ? <RunsPanel state={state} dispatch={dispatch} api={api} /> : <View state={state} dispatch={dispatch} api={api} />}
      </main>

      <footer className="nav">
        <button type="button" disabled={index === 0} onClick={() => dispatch({ type: 'back' })}>
          ← Back
        </button>
        <span className="why" data-testid="next-blocker">
          {why ?? ''}
        </span>
        {!isLast && (
          <button type="button" className="primary" disabled={why !== null} onClick={() => dispatch({ type: 'next' })}>
            Next →
          </button>
        )}
      </footer>
    </div>
  );
}
