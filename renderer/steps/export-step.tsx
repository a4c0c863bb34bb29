// Step 5: write the trained LoRA adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors).
// It does not convert or merge weights itself; the core's exporter does.
import type { StepProps } from '../app.js';
import { exportAdapter } from '../actions.js';

export function ExportStep({ state, dispatch, api }: StepProps) {
  const { outDir, busy, result, error } = state.exporting;
  const runId = state.train.runId;
  return (
    <section className="step">
      <h2>Export</h2>
      <p className="lead">
        Save the adapter of run <span className="mono">{runId ?? '–'}</span> in the Hugging Face PEFT format, ready for
        <span className="mono"> PeftModel.from_pretrained</span>.
      </p>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (runId) void exportAdapter(api, dispatch, runId, outDir);
        }}
      >
        <label className="grow">
          <span className="label">Output folder</span>
          <input
            type="text"
            value={outDir}
            spellCheck={false}
            onChange={(e) => dispatch({ type: 'export-dir', outDir: e.target.value })}
          />
        </label>
        <button type="submit" className="primary" disabled={busy || !runId || outDir.trim() === ''}>
          {busy ? 'Exporting…' : 'Export PEFT'}
        </button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {result && (
        <p className="success" role="status" data-testid="export-result">
          Adapter written to <span className="mono">{result}</span>
        </p>
      )}
      <p className="hint">Exporting is optional: you can try the adapter in the next step right away.</p>
    </section>
  );
}
