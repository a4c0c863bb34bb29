// The past-runs panel (top bar "Runs"): every run folder, newest first, with its outcome; Open puts a run back on
// the Train step so its adapter can be exported or tried again after a restart. Reads only; deletes nothing.
import { useEffect, type Dispatch } from 'react';
import type { Api } from './api.js';
import { loadRuns, openRun } from './actions.js';
import { isTraining, type Action, type WizardState } from './state.js';

const when = (ms: number) => (ms > 0 ? new Date(ms).toLocaleString() : '–');
const loss = (v: number | null) => (v === null ? '–' : v.toFixed(4));

export function RunsPanel({ state, dispatch, api }: { state: WizardState; dispatch: Dispatch<Action>; api: Api }) {
  const { list, loading, error } = state.runs;
  const training = isTraining(state.train);
  useEffect(() => void loadRuns(api, dispatch), [api]);
  return (
    <section className="runs-panel" aria-label="Past runs">
      <div className="step-head">
        <h2>Runs</h2>
        <div className="actions">
          <button type="button" onClick={() => void loadRuns(api, dispatch)} disabled={loading}>
            {loading ? 'Reading…' : 'Refresh'}
          </button>
          <button type="button" onClick={() => dispatch({ type: 'runs-toggled' })}>
            Close
          </button>
        </div>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {list.length === 0 ? (
        <div className="empty">{loading ? 'Reading run folders…' : 'No runs yet: train once and it appears here.'}</div>
      ) : (
        <table className="table" aria-label="Runs">
          <thead>
            <tr>
              <th>Started</th>
              <th>Run</th>
              <th>Status</th>
              <th className="num">Steps</th>
              <th className="num">Held-out loss</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <tr key={r.runId} data-run-id={r.runId}>
                <td>{when(r.createdMs)}</td>
                <td className="mono">{r.runId}</td>
                <td>
                  <span className={`state ${r.status === 'finished' ? 'ok' : 'warn'}`}>{r.status}</span>
                </td>
                <td className="num">{r.steps}</td>
                <td className="num">
                  {loss(r.evalLossBefore)} → {loss(r.evalLossAfter)}
                </td>
                <td className="num">
                  <button type="button" disabled={training} title={training ? 'A run is training' : undefined} onClick={() => void openRun(api, dispatch, r.runId)}>
                    Open
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
