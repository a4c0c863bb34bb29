// Step 3: the training data; Preview shows the first samples, the usable count and every bad line by number.
// It does not tokenize or split the data; the core does that when training starts.
import type { StepProps } from '../app.js';
import { previewDataset } from '../actions.js';
import { PathForm } from '../path-form.js';

const MAX_SAMPLE_CHARS = 600;

export function DataStep({ state, dispatch, api }: StepProps) {
  const { path, busy, preview, error } = state.data;
  return (
    <section className="step">
      <h2>Data</h2>
      <p className="lead">
        A plain-text file of documents, separated by <span className="mono">{'<|endoftext|>'}</span> lines (TinyStories
        style) or by blank lines. Entries that cannot be used are listed with their line numbers.
      </p>
      <PathForm
        label="Dataset file"
        value={path}
        onChange={(v) => dispatch({ type: 'data-path', path: v })}
        onSubmit={() => void previewDataset(api, dispatch, path)}
        busy={busy}
        actionText="Preview"
        busyText="Reading…"
        error={error}
      />
      {preview && (
        <>
          <p className="summary-line" data-testid="dataset-summary">
            <strong>{preview.count.toLocaleString()}</strong> usable sample{preview.count === 1 ? '' : 's'}
            {preview.errors.length > 0 && (
              <>
                {' · '}
                <span className="warn-text">
                  {preview.errors.length} line{preview.errors.length === 1 ? '' : 's'} skipped
                </span>
              </>
            )}
          </p>
          {preview.errors.length > 0 && (
            <table className="table compact" aria-label="Dataset errors">
              <thead>
                <tr>
                  <th className="num">Line</th>
                  <th>Problem</th>
                </tr>
              </thead>
              <tbody>
                {preview.errors.slice(0, 50).map((e) => (
                  <tr key={`${e.line}:${e.message}`}>
                    <td className="num mono">{e.line}</td>
                    <td>{e.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>First samples</h3>
          <ol className="samples">
            {preview.samples.map((s, i) => (
              <li key={i}>
                <pre>{s.length > MAX_SAMPLE_CHARS ? `${s.slice(0, MAX_SAMPLE_CHARS)}…` : s}</pre>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
