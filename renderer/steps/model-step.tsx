// Step 2: which base model to fine-tune; Inspect reads its config and shows the summary (or the error in place).
// It does not load weights; the core reads only what inspectModel needs.
import type { StepProps } from '../app.js';
import { inspectModel } from '../actions.js';
import { formatCount } from '../format.js';
import { PathForm } from '../path-form.js';

export function ModelStep({ state, dispatch, api }: StepProps) {
  const { path, busy, summary, error } = state.model;
  return (
    <section className="step">
      <h2>Model</h2>
      <p className="lead">A Llama-family model folder (Hugging Face layout: config.json, tokenizer, weights).</p>
      <PathForm
        label="Model folder"
        value={path}
        onChange={(v) => dispatch({ type: 'model-path', path: v })}
        onSubmit={() => void inspectModel(api, dispatch, path)}
        busy={busy}
        actionText="Inspect"
        busyText="Inspecting…"
        error={error}
      />
      {summary && (
        <dl className="facts" aria-label="Model summary">
          <div>
            <dt>Type</dt>
            <dd>{summary.modelType}</dd>
          </div>
          <div>
            <dt>Layers</dt>
            <dd>{summary.numLayers}</dd>
          </div>
          <div>
            <dt>Hidden size</dt>
            <dd>{summary.hiddenSize}</dd>
          </div>
          <div>
            <dt>Vocabulary</dt>
            <dd>{summary.vocabSize.toLocaleString()}</dd>
          </div>
          <div>
            <dt>Parameters</dt>
            <dd title={summary.paramCount.toLocaleString()}>{formatCount(summary.paramCount)}</dd>
          </div>
          <div className="wide">
            <dt>Folder</dt>
            <dd className="mono">{summary.path}</dd>
          </div>
        </dl>
      )}
    </section>
  );
}
