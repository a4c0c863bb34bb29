// Step 6: generate text with the base model plus the trained adapter (or without it, to compare).
// It does not stream tokens; the reply arrives whole.
import type { StepProps } from '../app.js';
import { generate } from '../actions.js';
import { MAX_NEW_TOKENS, parseWhole } from '../state.js';

export function TryStep({ state, dispatch, api }: StepProps) {
  const { prompt, promptUsed, maxTokensText, useAdapter, busy, text, error } = state.tryIt;
  const runId = state.train.runId;
  const valid = parseWhole(maxTokensText, 1, MAX_NEW_TOKENS) !== null;
  return (
    <section className="step">
      <h2>Try it</h2>
      <p className="lead">Generate text with the fine-tuned model.</p>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void generate(api, dispatch, state);
        }}
      >
        <label>
          <span className="label">Prompt</span>
          <textarea rows={4} value={prompt} onChange={(e) => dispatch({ type: 'try-prompt', prompt: e.target.value })} />
        </label>
        <div className="row center">
          <label className="inline">
            <span className="label">Max tokens</span>
            <input
              type="number"
              className="narrow"
              min={1}
              max={MAX_NEW_TOKENS}
              value={maxTokensText}
              aria-invalid={!valid}
              onChange={(e) => dispatch({ type: 'try-max-tokens', text: e.target.value })}
            />
          </label>
          <label className="inline check">
            <input
              type="checkbox"
              checked={useAdapter && runId !== null}
              disabled={runId === null}
              onChange={(e) => dispatch({ type: 'try-use-adapter', useAdapter: e.target.checked })}
            />
            <span>Use the adapter from run <span className="mono">{runId ?? '–'}</span></span>
          </label>
          <span className="grow" />
          <button type="submit" className="primary" disabled={busy || !valid}>
            {busy ? 'Generating…' : 'Generate'}
          </button>
        </div>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {text !== null && (
        <div className="output" data-testid="generated">
          <span className="prompt-echo">{promptUsed}</span>
          {text}
        </div>
      )}
    </section>
  );
}
