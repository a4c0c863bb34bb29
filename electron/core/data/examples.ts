// What one dataset row means for training, independent of the file format: a plain text (trained whole), a
// prompt with a completion (only the completion trained), or a chat (only the assistant turns trained).
// Also the record "shapes" JSONL and CSV rows come in, how a file's shape is detected, and the Alpaca prompt.
import { badRow, type BadRow } from './bad-rows.js';

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export type Example =
  | { kind: 'text'; line: number; text: string }
  /** The model sees prompt + completion exactly (any separator is already part of them); loss on the completion. */
  | { kind: 'prompt-completion'; line: number; prompt: string; completion: string }
  | { kind: 'chat'; line: number; messages: ChatMessage[] };

/** Which keys (JSONL) or header columns (CSV) of a row hold what. */
export type FieldMapping =
  | { shape: 'chat'; messages: string }
  | { shape: 'instruction'; instruction: string; input: string; output: string }
  | { shape: 'prompt-completion'; prompt: string; completion: string }
  | { shape: 'text'; text: string };

/**
 * The shapes auto-detection knows, in order of preference on a tie. Instruction rows use Alpaca's names or Dolly's
 * (context/response); prompt/completion rows also come as prompt/answer (Dolly's Alpaca export) or question/answer
 * (GSM8K). Other names: give the columns explicitly.
 */
export const KNOWN_MAPPINGS: readonly FieldMapping[] = [
  { shape: 'chat', messages: 'messages' },
  { shape: 'instruction', instruction: 'instruction', input: 'input', output: 'output' },
  { shape: 'instruction', instruction: 'instruction', input: 'context', output: 'response' },
  { shape: 'prompt-completion', prompt: 'prompt', completion: 'completion' },
  { shape: 'prompt-completion', prompt: 'prompt', completion: 'answer' },
  { shape: 'prompt-completion', prompt: 'prompt', completion: 'response' },
  { shape: 'prompt-completion', prompt: 'question', completion: 'answer' },
  { shape: 'text', text: 'text' },
];

/** The keys a row must have for the mapping (an instruction's input is optional). */
export function requiredKeys(m: FieldMapping): string[] {
  switch (m.shape) {
    case 'chat':
      return [m.messages];
    case 'instruction':
      return [m.instruction, m.output];
    case 'prompt-completion':
      return [m.prompt, m.completion];
    case 'text':
      return [m.text];
  }
}

export function describeMapping(m: FieldMapping): string {
  switch (m.shape) {
    case 'chat':
      return `chat (${m.messages}: [{role, content}])`;
    case 'instruction':
      return `instruction (${m.instruction}, ${m.input}, ${m.output}; Alpaca prompt)`;
    case 'prompt-completion':
      return `prompt/completion (${m.prompt}, ${m.completion})`;
    case 'text':
      return `text (${m.text})`;
  }
}

/**
 * The mapping most rows fit (ties go to the earlier entry of `candidates`), or null when no row fits any.
 * Detecting per file, not per row, keeps one file one shape: a row that fits another shape is a bad row.
 */
export function detectMapping(keySets: readonly (readonly string[])[], candidates: readonly FieldMapping[]): FieldMapping | null {
  let best: FieldMapping | null = null;
  let bestCount = 0;
  for (const m of candidates) {
    const need = requiredKeys(m);
    const count = keySets.filter((keys) => need.every((k) => keys.includes(k))).length;
    if (count > bestCount) [best, bestCount] = [m, count];
  }
  return best;
}

/** Stanford Alpaca's prompt (with and without an input), the format most instruction-tuned checkpoints know. */
export function alpacaPrompt(instruction: string, input: string): string {
  return input.trim() === ''
    ? `Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n${instruction}\n\n### Response:\n`
    : `Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
}

/**
 * Prompt and completion as the model sees them: a newline between them unless the prompt is empty or either side
 * already has whitespace at the seam, so "Question?" + "Answer" does not train "Question?Answer".
 */
export function joinPromptCompletion(prompt: string, completion: string): { prompt: string; completion: string } {
  const seamed = prompt === '' || /\s$/.test(prompt) || /^\s/.test(completion);
  return { prompt: seamed ? prompt : `${prompt}\n`, completion };
}

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

/** A row (JSONL object or CSV record keyed by header) as an Example, or the reason it cannot be one. */
export function toExample(row: Record<string, unknown>, m: FieldMapping, line: number, path: string): Example | BadRow {
  const bad = (kind: BadRow['kind'], what: string) => badRow(path, line, kind, what);
  const str = (key: string, opts: { optional?: boolean; nonEmpty?: boolean }): string | BadRow => {
    const v = row[key];
    if (v === undefined || (v === null && opts.optional)) return opts.optional ? '' : bad('missing-field', `missing field '${key}'`);
    if (typeof v !== 'string') return bad('wrong-type', `field '${key}' must be a string, got ${typeName(v)}`);
    if (opts.nonEmpty && v.trim() === '') return bad('empty-field', `field '${key}' is empty`);
    return v;
  };
  switch (m.shape) {
    case 'text': {
      const text = str(m.text, { nonEmpty: true });
      return typeof text === 'string' ? { kind: 'text', line, text } : text;
    }
    case 'prompt-completion': {
      const prompt = str(m.prompt, {});
      if (typeof prompt !== 'string') return prompt;
      const completion = str(m.completion, { nonEmpty: true });
      if (typeof completion !== 'string') return completion;
      return { kind: 'prompt-completion', line, ...joinPromptCompletion(prompt, completion) };
    }
    case 'instruction': {
      const instruction = str(m.instruction, { nonEmpty: true });
      if (typeof instruction !== 'string') return instruction;
      const input = str(m.input, { optional: true });
      if (typeof input !== 'string') return input;
      const output = str(m.output, { nonEmpty: true });
      if (typeof output !== 'string') return output;
      return { kind: 'prompt-completion', line, prompt: alpacaPrompt(instruction, input), completion: output };
    }
    case 'chat':
      return toChat(row[m.messages], m.messages, line, bad);
  }
}

function toChat(v: unknown, key: string, line: number, bad: (kind: BadRow['kind'], what: string) => BadRow): Example | BadRow {
  if (v === undefined) return bad('missing-field', `missing field '${key}'`);
  if (!Array.isArray(v)) return bad('wrong-type', `field '${key}' must be a list of {role, content}, got ${typeName(v)}`);
  if (v.length === 0) return bad('empty-field', `field '${key}' is an empty list`);
  const messages: ChatMessage[] = [];
  for (const [i, msg] of v.entries()) {
    const where = `${key}[${i}]`;
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return bad('wrong-type', `${where} must be an object {role, content}, got ${typeName(msg)}`);
    const { role, content } = msg as { role?: unknown; content?: unknown };
    if (role === undefined) return bad('missing-field', `${where} has no 'role'`);
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      return bad('unknown-role', `${where} has role ${JSON.stringify(role)}; expected one of ${CHAT_ROLES.join(', ')}`);
    }
    if (content === undefined) return bad('missing-field', `${where} has no 'content'`);
    if (typeof content !== 'string') return bad('wrong-type', `${where}.content must be a string, got ${typeName(content)}`);
    if (role === 'assistant' && content.trim() === '') return bad('empty-field', `${where} is an assistant message with empty content`);
    messages.push({ role: role as ChatRole, content });
  }
  if (!messages.some((msg) => msg.role === 'assistant')) return bad('no-assistant', `the conversation has no assistant message to train on`);
  return { kind: 'chat', line, messages };
}
