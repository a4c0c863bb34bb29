// Step 3: the training data. Preview reads the file as training will (format, columns, bad rows, tokenizer and chat
// template of the chosen model) and shows the statistics, every bad row by line, and the first rows with the part
// the loss counts highlighted. The options are edited here and travel with the preview (details.options).
import { useState } from 'react';
import type { StepProps } from '../app.js';
import { PathForm } from '../path-form.js';
import { previewDataset } from '../actions.js';
import { DATA_FORMATS, type DataFormat, type DatasetDetails, type DatasetOptionsParams, type PreviewExample } from '../../electron/core/data/dataset-contract.js';

const MAX_BAD_ROWS_SHOWN = 200;

interface OptionsForm {
  format: DataFormat;
  promptColumn: string;
  completionColumn: string;
  textColumn: string;
  skipBadRows: boolean;
  seqLenText: string;
}

function formFrom(o: DatasetOptionsParams | undefined): OptionsForm {
  return {
    format: o?.format ?? 'auto',
    promptColumn: o?.promptColumn ?? '',
    completionColumn: o?.completionColumn ?? '',
    textColumn: o?.textColumn ?? '',
    skipBadRows: o?.skipBadRows ?? false,
    seqLenText: o?.seqLen ? String(o.seqLen) : '',
  };
}

/** Empty fields are left out (the core detects or defaults them); the core validates the rest. */
function optionsFrom(f: OptionsForm): DatasetOptionsParams {
  const o: DatasetOptionsParams = { format: f.format, skipBadRows: f.skipBadRows };
  if (f.promptColumn.trim()) o.promptColumn = f.promptColumn.trim();
  if (f.completionColumn.trim()) o.completionColumn = f.completionColumn.trim();
  if (f.textColumn.trim()) o.textColumn = f.textColumn.trim();
  if (f.seqLenText.trim()) o.seqLen = Number(f.seqLenText);
  return o;
}

export function DataStep({ state, dispatch, api }: StepProps) {
  const { path, busy, preview, error } = state.data;
  const details = preview?.details;
  const [form, setForm] = useState<OptionsForm>(() => formFrom(details?.options));
  const set = (patch: Partial<OptionsForm>) => setForm((f) => ({ ...f, ...patch }));

  const runPreview = () => previewDataset(api, dispatch, { path, modelPath: state.model.path.trim() || undefined, options: optionsFrom(form) });

  return (
    <section className="step">
      <h2>Data</h2>
      <p className="lead">
        Plain text (documents separated by <span className="mono">{'<|endoftext|>'}</span> lines or blank lines, trained
        whole), JSON Lines (prompt/completion, instruction/input/output, or chat <span className="mono">messages</span>)
        or CSV with a header row. For rows with a prompt, only the completion (or the assistant's turns) is trained. An
        instruction example is bundled: <span className="mono">datasets/dolly-mini/dolly-mini.jsonl</span>.
      </p>
      <PathForm
        label="Dataset file"
        value={path}
        onChange={(v) => dispatch({ type: 'data-path', path: v })}
        onSubmit={() => void runPreview()}
        busy={busy}
        actionText="Preview"
        busyText="Reading…"
        error={error}
      />
      <fieldset className="row" aria-label="Dataset options" style={{ border: 'none', padding: 0, margin: '14px 0 0', flexWrap: 'wrap' }}>
        <label>
          <span className="label">Format</span>
          <select value={form.format} onChange={(e) => set({ format: e.target.value as DataFormat })}>
            {DATA_FORMATS.map((f) => (
              <option key={f} value={f}>
                {f === 'auto' ? 'auto (by extension)' : f}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span className="label">Prompt column</span>
          <input type="text" className="narrow" placeholder="detected" value={form.promptColumn} onChange={(e) => set({ promptColumn: e.target.value })} />
        </label>
        <label>
          <span className="label">Completion column</span>
          <input type="text" className="narrow" placeholder="detected" value={form.completionColumn} onChange={(e) => set({ completionColumn: e.target.value })} />
        </label>
        <label>
          <span className="label">Text column</span>
          <input type="text" className="narrow" placeholder="—" value={form.textColumn} onChange={(e) => set({ textColumn: e.target.value })} />
        </label>
        <label>
          <span className="label">Sequence length</span>
          <input type="number" min={2} className="narrow" placeholder="default" value={form.seqLenText} onChange={(e) => set({ seqLenText: e.target.value })} />
        </label>
        <label className="inline check">
          <input type="checkbox" checked={form.skipBadRows} onChange={(e) => set({ skipBadRows: e.target.checked })} />
          Skip bad rows
        </label>
      </fieldset>
      {preview && (
        <>
          <p className="summary-line" data-testid="dataset-summary">
            <strong>{preview.count.toLocaleString()}</strong> usable row{preview.count === 1 ? '' : 's'}
            {details && (
              <>
                {' · '}
                <span className="mono">{details.format}</span>, {details.shape}
              </>
            )}
            {preview.errors.length > 0 && (
              <>
                {' · '}
                <span className="warn-text">
                  {preview.errors.length} bad row{preview.errors.length === 1 ? '' : 's'}
                </span>
              </>
            )}
          </p>
          {details && <DatasetFacts details={details} />}
          {details?.refused && (
            <p className="error" role="alert">
              {details.refused}
            </p>
          )}
          {preview.errors.length > 0 && (
            <table className="table compact" aria-label="Dataset errors">
              <thead>
                <tr>
                  <th className="num">Line</th>
                  <th>Problem</th>
                </tr>
              </thead>
              <tbody>
                {preview.errors.slice(0, MAX_BAD_ROWS_SHOWN).map((e) => (
                  <tr key={`${e.line}:${e.message}`}>
                    <td className="num mono">{e.line}</td>
                    <td>{e.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {preview.errors.length > MAX_BAD_ROWS_SHOWN && <p className="hint">… and {preview.errors.length - MAX_BAD_ROWS_SHOWN} more.</p>}
          <h3>First rows</h3>
          {details && (
            <p className="hint">
              <mark>Highlighted</mark>: trained (the loss counts these tokens). The rest is context only.
            </p>
          )}
          <ol className="samples">
            {details
              ? details.examples.map((e) => <RenderedRow key={e.line} example={e} />)
              : preview.samples.map((s, i) => (
                  <li key={i}>
                    <pre>{s}</pre>
                  </li>
                ))}
          </ol>
        </>
      )}
    </section>
  );
}

function DatasetFacts({ details }: { details: DatasetDetails }) {
  const s = details.stats;
  return (
    <>
      <dl className="facts" aria-label="Dataset statistics">
        <div>
          <dt>Rows</dt>
          <dd>{s.rows.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Tokens</dt>
          <dd>{s.tokens.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Trained tokens</dt>
          <dd>{s.trainedTokens.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Truncated rows</dt>
          <dd>{s.truncatedRows.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Bad rows</dt>
          <dd>{s.badRows.toLocaleString()}</dd>
        </div>
        <div className="wide">
          <dt>Split (sequence length {details.seqLen})</dt>
          <dd>
            {s.trainExamples.toLocaleString()} rows → {s.trainSequences.toLocaleString()} training sequences;{' '}
            {s.validationExamples.toLocaleString()} rows → {s.validationSequences.toLocaleString()} held out
            {details.chatTemplate && <> · chat template: <span className="mono">{details.chatTemplate}</span></>}
          </dd>
        </div>
      </dl>
      {details.notes.map((n) => (
        <p className="hint" key={n}>
          {n}
        </p>
      ))}
    </>
  );
}

function RenderedRow({ example: e }: { example: PreviewExample }) {
  return (
    <li>
      <p className="sub">
        line {e.line} · {e.tokens} tokens, {e.trainedTokens} trained{e.truncated ? ' · truncated' : ''}
      </p>
      <pre data-testid="rendered-row">
        {e.segments.map((seg, i) => (seg.trained ? <mark key={i}>{seg.text}</mark> : <span key={i}>{seg.text}</span>))}
      </pre>
      <details>
        <summary className="sub">token ids</summary>
        <pre className="mono">{e.ids.map((id, i) => (e.trained[i] ? `[${id}]` : String(id))).join(' ')}</pre>
      </details>
    </li>
  );
}
