// Reads and tokenizes a dataset for a model: the file's rows, the model's chat template when the rows are chats,
// and every row's ids and loss mask. A conversation the template refuses (e.g. roles that do not alternate) is a
// bad row like any other. Bad rows are returned, not thrown: training refuses them, the preview lists them.
import { badRow } from './bad-rows.js';
import { encodeExample, type EncodedExample } from './encode-examples.js';
import { readDataset, type DatasetRead, type ReadOptions } from './read-dataset.js';
import { loadChatTemplate, noChatTemplateMessage, type ChatTemplate } from '../model/chat-template.js';
import type { TextTokenizer } from '../model/tokenizer.js';

export interface LoadedDataset {
  /** The file as read, with rows the template refused moved from examples to badRows. */
  read: DatasetRead;
  /** One per read.examples, same order. */
  encoded: EncodedExample[];
  chatTemplate: ChatTemplate | null;
}

export async function loadDataset(path: string, tok: Pick<TextTokenizer, 'encode' | 'eosTokenId'>, modelDir: string, o: ReadOptions = {}): Promise<LoadedDataset> {
  const ds = await readDataset(path, o);
  let chatTemplate: ChatTemplate | null = null;
  if (ds.mapping.shape === 'chat') {
    chatTemplate = await loadChatTemplate(modelDir);
    if (!chatTemplate) throw new Error(`${path} holds chat rows (messages), but ${noChatTemplateMessage(modelDir)}`);
  }
  const encoded: EncodedExample[] = [];
  const examples: DatasetRead['examples'] = [];
  const badRows = [...ds.badRows];
  for (const ex of ds.examples) {
    try {
      encoded.push(encodeExample(ex, tok, chatTemplate));
      examples.push(ex);
    } catch (err) {
      if (ex.kind !== 'chat') throw err;
      badRows.push(badRow(path, ex.line, 'template-error', `the chat template refused this conversation: ${(err as Error).message}`));
    }
  }
  badRows.sort((a, b) => a.line - b.line);
  return { read: { ...ds, examples, badRows }, encoded, chatTemplate };
}
