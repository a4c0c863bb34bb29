// Step 5: write the trained adapter as a PEFT folder, a llama.cpp GGUF LoRA file or a merged Hugging Face model,
// then list the files written with their sizes. An existing output is replaced only after the user confirms.
// It converts nothing itself: the core's exporter (electron/core/export/export-run.ts) does.
import { useState } from 'react';
import type { StepProps } from '../app.js';
import { formatBytes } from '../format.js';
import { PathForm } from '../path-form.js';
import { exportAdapter } from '../actions.js';

type Format = 'peft' | 'gguf' | 'merged';

const FORMATS: Record<Format, { label: string; action: string; pathLabel: string; defaultName: string; use: string }> = {
  peft: { label: 'PEFT adapter', action: 'Export PEFT', pathLabel: 'Output folder', defaultName: 'adapter-peft', use: 'for PeftModel.from_pretrained' },
  gguf: { label: 'GGUF LoRA', action: 'Export GGUF', pathLabel: 'Output file', defaultName: 'adapter.gguf', use: 'for llama.cpp (--lora) with a GGUF of the base model' },
  merged: { label: 'Merged model', action: 'Export merged', pathLabel: 'Output folder', defaultName: 'merged-model', use: 'the base weights with the adapter applied, a Hugging Face model folder' },
};

/** The core's refusal to replace an existing output (OutputExistsError) reaches the UI as its message. */
const EXISTS = /already exists.*allow overwriting/;

export function ExportStep({ state, dispatch, api }: StepProps) {
  const { outDir, busy, result, error } = state.exporting;
  const runId = state.train.runId;
  const [format, setFormat] = useState<Format>('peft');
  const [files, setFiles] = useState<{ name: string; bytes: number }[]>([]);
  const f = FORMATS[format];

  const chooseFormat = (next: Format) => {
    // A path still ending in the previous format's default name follows the format; an edited one stays.
    const old = FORMATS[format].defaultName;
    if (outDir.endsWith(old) && /[\\/]$/.test(outDir.slice(0, -old.length))) {
      dispatch({ type: 'export-dir', outDir: outDir.slice(0, -old.length) + FORMATS[next].defaultName });
    }
    setFormat(next);
    setFiles([]);
  };

  const run = async (overwrite: boolean) => {
    if (!runId) return;
    const r = await exportAdapter(api, dispatch, { runId, format, outDir, overwrite });
    setFiles(r?.files ?? []);
  };

  return (
    <section className="step">
      <h2>Export</h2>
      <p className="lead">
        Save what run <span className="mono">{runId ?? '–'}</span> learned: {f.label}, {f.use}.
      </p>
      <div className="row center" role="radiogroup" aria-label="Format">
        {(Object.keys(FORMATS) as Format[]).map((k) => (
          <label key={k} className="inline">
            <input type="radio" name="export-format" value={k} checked={format === k} disabled={busy} onChange={() => chooseFormat(k)} />
            <span className="label">{FORMATS[k].label}</span>
          </label>
        ))}
      </div>
      <PathForm
        label={f.pathLabel}
        value={outDir}
        onChange={(v) => dispatch({ type: 'export-dir', outDir: v })}
        onSubmit={() => void run(false)}
        busy={busy}
        disabled={!runId}
        actionText={f.action}
        busyText="Exporting…"
        error={error}
      />
      {error && EXISTS.test(error) && !busy && (
        <div className="row center">
          <button type="button" className="danger" onClick={() => void run(true)}>
            Replace it
          </button>
          <span className="hint">The existing {format === 'gguf' ? 'file' : 'folder'} is replaced only once the new export is complete.</span>
        </div>
      )}
      {result && (
        <div className="success" role="status" data-testid="export-result">
          Written to <span className="mono">{result}</span>
          {files.length > 0 && (
            <table className="table compact">
              <tbody>
                {files.map((file) => (
                  <tr key={file.name}>
                    <td className="mono">{file.name}</td>
                    <td className="num">{formatBytes(file.bytes)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
      <p className="hint">Exporting is optional: you can try the adapter in the next step right away.</p>
    </section>
  );
}
