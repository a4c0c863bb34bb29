// Text in, text out on top of OrtLanguageModel's token stream: encodes the prompt (BOS added) and turns each new
// token into the piece of text it adds, for the CLI's stdout and the "try it" step's token events.
import type { TextTokenizer } from '../model/tokenizer.js';
import type { GenerationOptions, GenerationStats, OrtLanguageModel } from './ort-generate.js';

export interface TextStream {
  /** Pieces of the continuation, in order; together they are the whole continuation. */
  pieces: AsyncIterable<string>;
  readonly done: Promise<GenerationStats>;
  cancel(): void;
}

export function generateTextStream(model: OrtLanguageModel, tok: TextTokenizer, prompt: string, o: GenerationOptions, signal?: AbortSignal): TextStream {
  const promptIds = tok.encode(prompt, { addBos: true });
  const stream = model.generate(promptIds, o, signal);
  async function* pieces(): AsyncGenerator<string> {
    // Decode prompt and continuation together and emit what was added: SentencePiece decoders treat a sequence's
    // first token differently (leading space), and byte-fallback tokens only form a character together.
    const ids = [...promptIds];
    let shown = tok.decode(ids);
    let pending = '';
    for await (const id of stream) {
      ids.push(id);
      const text = tok.decode(ids);
      if (!text.startsWith(shown)) continue; // a cleanup that rewrote earlier text: wait for a stable prefix
      pending = text.slice(shown.length);
      if (pending.endsWith('\uFFFD')) continue; // half a multi-byte character: wait for the rest
      shown = text;
      if (pending) yield pending;
      pending = '';
    }
    if (pending) yield pending;
  }
  return { pieces: pieces(), done: stream.done, cancel: () => stream.cancel() };
}
