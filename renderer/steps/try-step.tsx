// Step 6: generate text with the base model plus the trained adapter (or without it, to compare). The text streams
// in as the core produces it ('generate-token' events of this call's stream id) and Stop ends it early; the reply
// of the generate call is the final text. The streamed text is this step's own view state, not the wizard's.
import { useEffect, useRef, useState } from 'react';
import type { StepProps } from '../app.js';
import type { Api } from '../api.js';
import { MAX_NEW_TOKENS, parseWhole } from '../state.js';

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function TryStep({ state, dispatch, api }: StepProps) {
  const { prompt, promptUsed, maxTokensText, useAdapter, busy, text, error } = state.tryIt;
  const runId = state.train.runId;
  const valid = parseWhole(maxTokensText, 1, MAX_NEW_TOKENS) !== null;
  const [streamed, setStreamed] = useState('');
  const [stopError, setStopError] = useState<string | null>(null);
  const streamId = useRef<string | null>(null);
  const unsubscribe = useRef<(() => void) | null>(null);
  // Leaving the step mid-generation stops listening (the generation itself finishes on its own).
  useEffect(() => () => unsubscribe.current?.(), []);

  async function start(): Promise<void> {
    const maxTokens = parseWhole(maxTokensText, 1, MAX_NEW_TOKENS);
    if (maxTokens === null) return dispatch({ type: 'try-failed', error: `Max tokens must be a whole number from 1 to ${MAX_NEW_TOKENS}.` });
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
      const { text: full } = await api.call('generate', { runId: useAdapter ? runId : null, prompt, maxTokens, streamId: id });
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
