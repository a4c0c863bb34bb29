// Step 2: which base model to fine-tune (a Hugging Face folder or a GGUF file); Inspect reads its config and shows
// the summary (or the error in place). It does not load weights; the core reads only what inspectModel needs.
import type { StepProps } from '../app.js';
import { inspectModel } from '../actions.js';
import { formatCount } from '../format.js';
import { PathForm } from '../path-form.js';
import type { ModelSummary } from '../../electron/core/api/contract.js';

/** "BF16" or "Q4_0 · F32 (norms)": the main storage type first, then the others. */
function storageText(m: ModelSummary): string {
  const total = m.storage.reduce((a, [, n]) => a + n, 0);
  return m.storage.map(([type, n], i) => (i === 0 || n / total > 0.01 ? type : `${type} (small)`)).join(' · ');
}

/** Architecture details worth knowing before training: heads, GQA, biases, RoPE scaling, attention window. */
function detailsText(m: ModelSummary): string {
  const parts = [`${m.numHeads} heads${m.numKvHeads !== m.numHeads ? ` (${m.numKvHeads} KV)` : ''}`];
  if (m.attentionBias) parts.push('q/k/v biases');
  if (m.tiedEmbeddings) parts.push('tied embeddings');
  if (m.ropeScaling) parts.push(`RoPE ${m.ropeScaling}`);
  if (m.slidingWindow !== null) parts.push(`attention window ${m.slidingWindow.toLocaleString()} (longer sequences are refused)`);
  return parts.join(' · ');
}

export function ModelStep({ state, dispatch, api }: StepProps) {
  const { path, busy, summary, error } = state.model;
  return (
    <section className="step">
      <h2>Model</h2>
      <p className="lead">
        A Llama-family model (Llama 2/3, Qwen2, Mistral, SmolLM, TinyLlama): a Hugging Face folder (config.json,
        tokenizer, safetensors) or a GGUF file (F32, F16, Q8_0, Q4_0).
      </p>
      <PathForm
        label="Model folder or GGUF file"
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
            <dd>
              {summary.modelType} <span className="tag">{summary.source === 'gguf' ? 'GGUF' : 'Hugging Face'}</span>
            </dd>
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
          <div>
            <dt>Weights</dt>
            <dd>{storageText(summary)}</dd>
          </div>
          <div className="wide">
            <dt>Architecture</dt>
            <dd>{detailsText(summary)}</dd>
          </div>
          <div className="wide">
            <dt>{summary.source === 'gguf' ? 'File' : 'Folder'}</dt>
            <dd className="mono">{summary.path}</dd>
          </div>
        </dl>
      )}
    </section>
  );
}
