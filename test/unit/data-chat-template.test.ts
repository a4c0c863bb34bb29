// Tests chat templates: where they are read from, rendering against expected strings written out by hand (the
// Zephyr and ChatML examples of the transformers chat-templating docs, Meta's Llama-2 chat template), the clear
// error for a model without one (stories260K), and that only the assistant turns are trained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadChatTemplate, renderConversation } from '../../electron/core/model/chat-template.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { loadDataset } from '../../electron/core/data/load-dataset.js';
import { findRepoRoot } from '../../electron/core/paths.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { folderSpmVocab, llamaArchMetadata, llamaGgufTensors } from '../../electron/core/model/gguf-llama.js';
import { spmVocabMetadata } from '../../electron/core/model/gguf-vocab.js';
import { writeGguf } from '../../electron/core/model/gguf-write.js';

const ROOT = findRepoRoot();
const STORIES = join(ROOT, 'models', 'stories260K');
const FIX = join(ROOT, 'test', 'fixtures', 'data');

const ZEPHYR = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
const CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const LLAMA2 = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/** A stories260K-like model folder (its tokenizer) whose tokenizer_config carries `chatTemplate`. */
async function modelWith(chatTemplate: unknown, jinjaFile?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-chat-'));
  await copyFile(join(STORIES, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: chatTemplate }));
  if (jinjaFile !== undefined) await writeFile(join(dir, 'chat_template.jinja'), jinjaFile);
  return dir;
}

test('Zephyr and ChatML render as in the transformers docs; Llama-2 as Meta writes it', async () => {
  const dirs: string[] = [];
  const template = async (text: string) => {
    dirs.push(await modelWith(text));
    return (await loadChatTemplate(dirs.at(-1)!))!;
  };
  try {
    const zephyr = await template(ZEPHYR);
    assert.equal(
      zephyr.render([
        { role: 'system', content: 'You are a friendly chatbot who always responds in the style of a pirate' },
        { role: 'user', content: 'How many helicopters can a human eat in one sitting?' },
      ], { addGenerationPrompt: true }),
      '<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n<|user|>\nHow many helicopters can a human eat in one sitting?</s>\n<|assistant|>\n',
    );
    const chatml = await template(CHATML);
    const conversation = [
      { role: 'user', content: 'Hi there!' },
      { role: 'assistant', content: 'Nice to meet you!' },
      { role: 'user', content: 'Can I ask a question?' },
    ];
    assert.equal(
      chatml.render(conversation, { addGenerationPrompt: true }),
      '<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\nNice to meet you!<|im_end|>\n<|im_start|>user\nCan I ask a question?<|im_end|>\n<|im_start|>assistant\n',
    );
    const llama2 = await template(LLAMA2);
    const withSystem = [{ role: 'system', content: 'Be brief.' }, ...conversation.slice(0, 2), { role: 'user', content: 'Why?' }, { role: 'assistant', content: 'Because.' }];
    const r = renderConversation(llama2, withSystem);
    assert.equal(r.text, '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there! [/INST] Nice to meet you! </s><s>[INST] Why? [/INST] Because. </s>');
    assert.deepEqual(r.assistantSpans.map(([a, b]) => r.text.slice(a, b)), [' Nice to meet you! </s>', ' Because. </s>']);
    assert.throws(() => llama2.render([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], { addGenerationPrompt: false }), /Conversation roles must alternate/);
  } finally {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
});

test('template sources: chat_template.jinja first, a list uses "default", stories260K has none', async () => {
  const dirs = [await modelWith([{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: 'DEFAULT' }]), await modelWith([{ name: 'rag', template: 'x' }]), await modelWith(CHATML, 'FROM FILE')];
  try {
    assert.equal((await loadChatTemplate(dirs[0]!))!.render([], { addGenerationPrompt: false }), 'DEFAULT');
    await assert.rejects(loadChatTemplate(dirs[1]!), /chat_template lists templates "rag" but none is named "default"/);
    const fromFile = (await loadChatTemplate(dirs[2]!))!;
    assert.equal(fromFile.render([], { addGenerationPrompt: false }), 'FROM FILE');
    assert.equal(fromFile.source, join(dirs[2]!, 'chat_template.jinja'));
    assert.equal(await loadChatTemplate(STORIES), null);
    const tok = await loadTokenizer(STORIES);
    await assert.rejects(loadDataset(join(FIX, 'chat.jsonl'), tok, STORIES), (e: Error) => {
      assert.match(e.message, /chat\.jsonl holds chat rows \(messages\), but .*stories260K has no chat template/);
      assert.match(e.message, /chat_template\.jinja/);
      return true;
    });
  } finally {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
});

test('chat rows: only the assistant turns (with their end-of-turn text) are trained', async () => {
  const dir = await modelWith(CHATML);
  try {
    const tok = await loadTokenizer(dir);
    const { read, encoded } = await loadDataset(join(FIX, 'chat.jsonl'), tok, dir);
    assert.equal(encoded.length, 5);
    encoded.forEach((e, i) => {
      const ex = read.examples[i]!;
      assert.ok(ex.kind === 'chat');
      // Independent reference: the rendered text by hand, and the trained ids decoded run by run.
      const expected = ex.messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('');
      assert.equal(tok.decode(e.ids, { skipSpecial: false }).replace(/^<s> ?/, ''), expected);
      const runs: string[] = [];
      for (let a = 0; a < e.ids.length; a++) {
        if (!e.trained[a] || e.trained[a - 1]) continue;
        let b = a;
        while (b < e.ids.length && e.trained[b]) b++;
        runs.push(tok.decode(e.ids.slice(0, b), { skipSpecial: false }).slice(tok.decode(e.ids.slice(0, a), { skipSpecial: false }).length));
      }
      const replies = ex.messages.filter((m) => m.role === 'assistant').map((m) => `${m.content}<|im_end|>\n`);
      assert.deepEqual(runs, replies, `line ${ex.line}`);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a conversation the template refuses is a bad row on its line', async () => {
  const dir = await modelWith(LLAMA2);
  try {
    const { read, encoded } = await loadDataset(join(FIX, 'bad/chat-template-refused.jsonl'), await loadTokenizer(dir), dir);
    assert.deepEqual(read.badRows.map((r) => [r.line, r.kind]), [[2, 'template-error']]);
    assert.match(read.badRows[0]!.message, /line 2: the chat template refused this conversation: .*Conversation roles must alternate/);
    assert.deepEqual(encoded.map((e) => e.line), [1, 3]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a GGUF file: its tokenizer.chat_template metadata, with BOS/EOS text from its vocabulary', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-chat-gguf-'));
  try {
    const folder = await openModelFolder(STORIES);
    const vocab = await folderSpmVocab(folder);
    const path = join(dir, 'stories-chat.gguf');
    await writeGguf(path, {
      metadata: [...llamaArchMetadata(folder.config, 'stories', 'f32'), ...spmVocabMetadata(vocab), ['tokenizer.chat_template', { type: 'string', value: LLAMA2 }]],
      tensors: llamaGgufTensors(folder, 'f32'),
    });
    const t = (await loadChatTemplate(path))!;
    assert.match(t.source, /tokenizer\.chat_template/);
    // stories260K's EOS id is 1, the same piece as BOS ('<s>'): the texts follow the file's ids, not a convention.
    const [bos, eos] = [vocab.tokens[vocab.bosId]!, vocab.tokens[vocab.eosId]!];
    assert.deepEqual([t.bosToken, t.eosToken], [bos, eos], 'special token texts come from the GGUF vocabulary');
    assert.equal(t.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }], { addGenerationPrompt: false }), `${bos}[INST] Hi [/INST] Hello ${eos}`);
    // The same model without the metadata has no template.
    const plain = join(dir, 'stories.gguf');
    await writeGguf(plain, { metadata: [...llamaArchMetadata(folder.config, 'stories', 'f32'), ...spmVocabMetadata(vocab)], tensors: llamaGgufTensors(folder, 'f32') });
    assert.equal(await loadChatTemplate(plain), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
