// A model's chat template (Jinja, as Hugging Face stores it) and the rendering of a conversation with it, plus
// where each assistant turn lies in the rendered text so training can put the loss on those turns only.
// Sources, first found wins: chat_template.jinja in the model folder (what transformers writes since 4.43), then
// tokenizer_config.json's chat_template (a string, or a list of {name, template} from which "default" is used).
// A GGUF file: chat_template.jinja / tokenizer_config.json beside it, else its tokenizer.chat_template metadata.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { isGgufPath } from './gguf-model.js';
import { readGgufHeader, type GgufFile } from './gguf-read.js';

export interface ChatTurn {
  role: string;
  content: string;
}

export interface ChatTemplate {
  /** Where the template came from (for messages). */
  source: string;
  bosToken: string | null;
  eosToken: string | null;
  render(messages: readonly ChatTurn[], opts: { addGenerationPrompt: boolean }): string;
}

/** A special token in tokenizer_config.json is either a string or {content: string}. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Picks the template text out of tokenizer_config.json's chat_template value. */
function templateFromConfig(value: unknown, where: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter((t): t is { name: string; template: string } => typeof t?.name === 'string' && typeof t?.template === 'string');
    const def = named.find((t) => t.name === 'default');
    if (def) return def.template;
    throw new Error(`${where}: chat_template lists templates ${named.map((t) => `"${t.name}"`).join(', ') || '(none readable)'} but none is named "default"`);
  }
  throw new Error(`${where}: chat_template must be a string or a list of {name, template}`);
}

/** The text of special token `key` (e.g. tokenizer.ggml.bos_token_id) of a GGUF vocabulary, or null. */
function ggufTokenText(file: GgufFile, key: string): string | null {
  const id = file.metadata.get(key);
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  if (typeof id !== 'number' || !Array.isArray(tokens)) return null;
  const text = tokens[id];
  return typeof text === 'string' ? text : null;
}

/** The chat template stored in a GGUF file's metadata (llama.cpp's convert scripts copy it there), or null. */
async function ggufChatTemplate(path: string): Promise<ChatTemplate | null> {
  const file = await readGgufHeader(path);
  const text = file.metadata.get('tokenizer.chat_template');
  if (typeof text !== 'string') return null;
  return compileChatTemplate(text, `${path} (tokenizer.chat_template)`, {
    bosToken: ggufTokenText(file, 'tokenizer.ggml.bos_token_id'),
    eosToken: ggufTokenText(file, 'tokenizer.ggml.eos_token_id'),
  });
}

/** The model's chat template, or null when it has none (base models usually do not). `modelPath`: folder or .gguf. */
export async function loadChatTemplate(modelPath: string): Promise<ChatTemplate | null> {
  if (isGgufPath(modelPath)) return (await loadFolderChatTemplate(dirname(modelPath))) ?? ggufChatTemplate(modelPath);
  return loadFolderChatTemplate(modelPath);
}

async function loadFolderChatTemplate(modelDir: string): Promise<ChatTemplate | null> {
  const configPath = join(modelDir, 'tokenizer_config.json');
  const configText = await readOptional(configPath);
  let config: Record<string, unknown> = {};
  if (configText !== null) {
    try {
      config = JSON.parse(configText) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${configPath} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const jinjaPath = join(modelDir, 'chat_template.jinja');
  const fromFile = await readOptional(jinjaPath);
  const text = fromFile ?? templateFromConfig(config.chat_template, configPath);
  if (text === null) return null;
  const source = fromFile !== null ? jinjaPath : `${configPath} (chat_template)`;
  return compileChatTemplate(text, source, { bosToken: tokenText(config.bos_token), eosToken: tokenText(config.eos_token) });
}

export function compileChatTemplate(text: string, source: string, tokens: { bosToken: string | null; eosToken: string | null }): ChatTemplate {
  let template: Template;
  try {
    template = new Template(text);
  } catch (err) {
    throw new Error(`${source}: the chat template does not parse: ${(err as Error).message}`);
  }
  return {
    source,
    ...tokens,
    render(messages, { addGenerationPrompt }) {
      return template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: tokens.bosToken ?? '',
        eos_token: tokens.eosToken ?? '',
      });
    },
  };
}

/** What training on chat data means for a model without a template; shown as the error. */
export function noChatTemplateMessage(modelDir: string): string {
  return (
    `${modelDir} has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json), so chat ` +
    `data (messages) cannot be rendered the way this model will be prompted. Add the template the model is meant ` +
    `to be used with as chat_template.jinja in the model folder, or write the data as prompt/completion rows.`
  );
}

export interface RenderedConversation {
  text: string;
  /** [start, end) character ranges of the assistant turns as rendered (including the template's end-of-turn text). */
  assistantSpans: [number, number][];
}

/**
 * Renders the whole conversation and finds each assistant turn by rendering the conversation up to it twice: with
 * the generation prompt (what comes before the reply) and with the reply. This needs a template that renders a
 * conversation as a growing prefix, which chat templates are written to do; when one does not, this says so.
 */
export function renderConversation(t: ChatTemplate, messages: readonly ChatTurn[]): RenderedConversation {
  const text = t.render(messages, { addGenerationPrompt: false });
  const assistantSpans: [number, number][] = [];
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = t.render(messages.slice(0, i), { addGenerationPrompt: true });
    const through = t.render(messages.slice(0, i + 1), { addGenerationPrompt: false });
    if (!through.startsWith(before) || !text.startsWith(through)) {
      throw new Error(`the chat template (${t.source}) does not render message ${i + 1} as a continuation of the ones before it, so the assistant's part cannot be told apart`);
    }
    assistantSpans.push([before.length, through.length]);
  });
  return { text, assistantSpans };
}
