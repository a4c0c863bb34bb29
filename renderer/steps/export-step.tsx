// Step 5: write the trained LoRA adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors).
// It does not convert or merge weights itself; the core's exporter does.
import type { StepProps } from '../app.js';
import { exportAdapter } from '../actions.js';
import { PathForm } from '../path-form.js';

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
      <PathForm
        label="Output folder"
        value={outDir}
        onChange={(v) => dispatch({ type: 'export-dir', outDir: v })}
        onSubmit={() => runId && void exportAdapter(api, dispatch, runId, outDir)}
        busy={busy}
        disabled={!runId}
        actionText="Export PEFT"
        busyText="Exporting…"
        error={error}
      />
      {result && (
        <p className="success" role="status" data-testid="export-result">
          Adapter written to <span className="mono">{result}</span>
        </p>
      )}
      <p className="hint">Exporting is optional: you can try the adapter in the next step right away.</p>
    </section>
  );
}
