// Turns Examples into token ids plus, per id, whether predicting it is trained (the loss mask): all of a plain
// text; the completion of a prompt/completion (then EOS); the assistant turns of a chat as its template renders
// them. The whole text is tokenized once, and a boundary is placed where the tokens of the text before it stop
// agreeing with the whole, so a token that straddles the seam (e.g. "▁42" after "Answer:") counts as trained.
import type { TextTokenizer } from '../model/tokenizer.js';
import { renderConversation, type ChatTemplate } from '../model/chat-template.js';
import type { Example } from './examples.js';

export interface EncodedExample {
  kind: Example['kind'];
  line: number;
  ids: number[];
  /** trained[i] = 1 when ids[i] is a target the loss counts (ids[0] never is: nothing predicts it). */
  trained: Uint8Array;
}

type Encoder = Pick<TextTokenizer, 'encode' | 'eosTokenId'>;

/** Length of the common prefix of two id lists. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * `text` tokenized, with the character ranges `spans` trained: ids from the first one that differs from the
 * tokenization of text[0, start) up to (not including) the first that differs from that of text[0, end).
 */
function encodeSpans(tok: Encoder, text: string, spans: readonly [number, number][], addBos: boolean): { ids: number[]; trained: Uint8Array } {
  const ids = tok.encode(text, { addBos });
  const trained = new Uint8Array(ids.length);
  for (const [start, end] of spans) {
    const from = commonPrefix(tok.encode(text.slice(0, start), { addBos }), ids);
    const to = end >= text.length ? ids.length : commonPrefix(tok.encode(text.slice(0, end), { addBos }), ids);
    trained.fill(1, Math.max(from, 1), Math.max(to, from));
  }
  return { ids, trained };
}

function withEos(e: { ids: number[]; trained: Uint8Array }, eos: number | null): { ids: number[]; trained: Uint8Array } {
  if (eos === null) return e;
  const trained = new Uint8Array(e.trained.length + 1);
  trained.set(e.trained);
  trained[e.trained.length] = 1;
  return { ids: [...e.ids, eos], trained };
}

/** `chat` is the model's template; chat examples need one (the caller reports its absence once, not per row). */
export function encodeExample(ex: Example, tok: Encoder, chat: ChatTemplate | null): EncodedExample {
  switch (ex.kind) {
    case 'text': {
      // Trained whole; EOS and chunking are the plain-text path's (samples.ts buildSamples).
      const ids = tok.encode(ex.text, { addBos: true });
      const trained = new Uint8Array(ids.length).fill(1);
      trained[0] = 0;
      return { kind: ex.kind, line: ex.line, ids, trained };
    }
    case 'prompt-completion': {
      const text = ex.prompt + ex.completion;
      // EOS after the completion is trained, so the model learns to stop there.
      return { kind: ex.kind, line: ex.line, ...withEos(encodeSpans(tok, text, [[ex.prompt.length, text.length]], true), tok.eosTokenId) };
    }
    case 'chat': {
      if (!chat) throw new Error('chat examples need the model\'s chat template');
      const r = renderConversation(chat, ex.messages);
      // Templates usually write BOS themselves ({{ bos_token }}); add it only when this one does not.
      const addBos = !(chat.bosToken && r.text.startsWith(chat.bosToken));
      return { kind: ex.kind, line: ex.line, ...encodeSpans(tok, r.text, r.assistantSpans, addBos) };
    }
  }
}
