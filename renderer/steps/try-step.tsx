// Step 6: generate text with the base model plus the trained adapter (or without it, to compare). The text streams
// in as the core produces it ('generate-token' events of this call's stream id) and Stop ends it early; the reply
// of the generate call is the final text. The streamed text is this step's own view state, not the wizard's.
import { useEffect, useRef, useState } from 'react';
import type { StepProps } from '../app.js';
import type { Api } from '../api.js';
import { MAX_NEW_TOKENS, MAX_TEMPERATURE, parseDecimal, parseWhole } from '../state.js';

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function TryStep({ state, dispatch, api }: StepProps) {
  const { prompt, promptUsed, maxTokensText, temperatureText, topPText, useAdapter, busy, text, error } = state.tryIt;
  const runId = state.train.runId;
  const temperature = parseDecimal(temperatureText, 0, MAX_TEMPERATURE);
  const topP = parseDecimal(topPText, 0.01, 1);
  const valid = parseWhole(maxTokensText, 1, MAX_NEW_TOKENS) !== null && temperature !== null && topP !== null;
  const [streamed, setStreamed] = useState('');
  const [stopError, setStopError] = useState<string | null>(null);
  const streamId = useRef<string | null>(null);
  const unsubscribe = useRef<(() => void) | null>(null);
  // Leaving the step mid-generation stops listening (the generation itself finishes on its own).
  useEffect(() => () => unsubscribe.current?.(), []);

  async function start(): Promise<void> {
    const maxTokens = parseWhole(maxTokensText, 1, MAX_NEW_TOKENS);
    if (maxTokens === null) return dispatch({ type: 'try-failed', error: `Max tokens must be a whole number from 1 to ${MAX_NEW_TOKENS}.` });
    if (temperature === null || topP === null) return dispatch({ type: 'try-failed', error: `Temperature must be from 0 to ${MAX_TEMPERATURE} and top-p from 0.01 to 1.` });
    const id = `try-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    streamId.current = id;
    setStreamed('');
    setStopError(null);
    // Pieces arrive in order on one connection; index guards against a piece of an earlier stream being shown.
    const pieces: string[] = [];
    unsubscribe.current = api.onEvent((m) => {
      if (m.event !== 'generate-token' || m.data.streamId !== id) return;
      pieces[m.data.index] = m.data.piece;
      setStreamed(pieces.join(''));
    });
    dispatch({ type: 'try-busy' });
    try {
      // A fresh seed per click: sampling again gives another continuation; temperature 0 is greedy and ignores it.
      const sampling = temperature ? { temperature, topP: topP ?? 1, seed: Math.floor(Math.random() * 2 ** 32) } : {};
      const { text: full } = await api.call('generate', { runId: useAdapter ? runId : null, prompt, maxTokens, streamId: id, ...sampling });
      dispatch({ type: 'try-done', text: full });
    } catch (err) {
      dispatch({ type: 'try-failed', error: errorText(err) });
    } finally {
      unsubscribe.current?.();
      unsubscribe.current = null;
      streamId.current = null;
    }
  }

  return (
    <section className="step">
      <h2>Try it</h2>
      <p className="lead">Generate text with the fine-tuned model, on this computer.</p>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void start();
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
          <label className="inline" title="0 picks the most likely token every time (greedy); higher values sample more freely">
            <span className="label">Temperature</span>
            <input
              type="number"
              className="narrow"
              min={0}
              max={MAX_TEMPERATURE}
              step={0.1}
              value={temperatureText}
              aria-invalid={temperature === null}
              onChange={(e) => dispatch({ type: 'try-sampling', temperatureText: e.target.value })}
            />
          </label>
          <label className="inline" title="Sample only from the most likely tokens that together hold this much probability">
            <span className="label">Top-p</span>
            <input
              type="number"
              className="narrow"
              min={0.01}
              max={1}
              step={0.05}
              value={topPText}
              disabled={temperature === 0}
              aria-invalid={topP === null}
              onChange={(e) => dispatch({ type: 'try-sampling', topPText: e.target.value })}
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
          {busy && <StopButton api={api} streamId={streamId.current} onError={setStopError} />}
          <button type="submit" className="primary" disabled={busy || !valid}>
            {busy ? 'Generating…' : 'Generate'}
          </button>
        </div>
      </form>
      {(error ?? stopError) && (
        <p className="error" role="alert">
          {error ?? stopError}
        </p>
      )}
      {busy && (
        <div className="output" data-testid="generating" aria-live="polite" aria-busy="true">
          <span className="prompt-echo">{promptUsed}</span>
          {streamed}
        </div>
      )}
      {!busy && text !== null && (
        <div className="output" data-testid="generated">
          <span className="prompt-echo">{promptUsed}</span>
          {text}
        </div>
      )}
    </section>
  );
}

function StopButton({ api, streamId, onError }: { api: Api; streamId: string | null; onError(message: string): void }) {
  return (
    <button
      type="button"
      disabled={streamId === null}
      onClick={() => {
        if (streamId) api.call('stopGenerate', { streamId }).catch((err: unknown) => onError(`Could not stop: ${errorText(err)}`));
      }}
    >
      Stop
    </button>
  );
}
