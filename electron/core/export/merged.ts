// Writes a Hugging Face model folder with the run's LoRA merged into the base weights: W + scale * B @ A for every
// adapted module, every other tensor copied byte for byte, each file in the base's dtype where it is F32, F16 or
// BF16 (an adapted tensor of another dtype is written F32), the base's shard layout kept, config and tokenizer files
// copied. Streams one tensor at a time (unchanged ones in chunks), so memory stays near the largest adapted matrix.
import { access, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { atomicWriteFile } from '../util/atomic-file.js';
import { DTYPE_BYTES, elementCount } from '../model/safetensors.js';
import { readModelTensorBytes, readModelTensorF32, tensorLocation, type ModelFolder } from '../model/model-folder.js';
import { encodeFloats, writeSafetensorsStream, type FloatDtype, type StreamedTensor } from '../model/safetensors-write.js';
import { copyFileDurably, writeFolderAtomically } from './atomic-output.js';
import type { AdaptedModule, RunAdapter } from './run-adapter.js';

/** Files of a Hugging Face folder copied unchanged beside the weights, when the base has them. */
export const MODEL_SIDE_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'tokenizer.model',
  'special_tokens_map.json', 'chat_template.jinja',
] as const;

/** Unchanged tensors are copied in pieces of this size, so a large embedding is never held whole. */
const COPY_CHUNK_BYTES = 64 << 20;

export interface WrittenFile {
  /** Name inside the output folder. */
  name: string;
  bytes: number;
}

/** W [out, in] += scale * B [out, r] @ A [r, in], in place, row by row (accumulated in f32 like W itself). */
export function addLoraDelta(w: Float32Array, m: Pick<AdaptedModule, 'a' | 'b' | 'inDim' | 'outDim'>, rank: number, scale: number): void {
  const { a, b, inDim, outDim } = m;
  if (w.length !== inDim * outDim) throw new Error(`LoRA merge: weight has ${w.length} values, expected ${outDim} x ${inDim}`);
  for (let o = 0; o < outDim; o++) {
    const row = o * inDim;
    for (let k = 0; k < rank; k++) {
      const s = scale * b[o * rank + k]!;
      if (s === 0) continue;
      const ak = k * inDim;
      for (let i = 0; i < inDim; i++) w[row + i]! += s * a[ak + i]!;
    }
  }
}

function isFloatDtype(d: string): d is FloatDtype {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

/** The output tensors of one base file: merged ones computed when written, the rest copied in chunks. */
function fileTensors(base: ModelFolder, names: string[], adapted: Map<string, AdaptedModule>, run: RunAdapter): StreamedTensor[] {
  return names.map((name) => {
    const { info } = tensorLocation(base, name);
    const m = adapted.get(name);
    if (m) {
      const dtype: FloatDtype = isFloatDtype(info.dtype) ? info.dtype : 'F32';
      return {
        name, dtype, shape: info.shape,
        async *bytes() {
          const w = await readModelTensorF32(base, name);
          addLoraDelta(w, m, run.adapter.rank, run.scale);
          yield encodeFloats(w, dtype);
        },
      };
    }
    return {
      name, dtype: info.dtype, shape: info.shape,
      async *bytes() {
        for (let start = 0; start < info.nbytes; start += COPY_CHUNK_BYTES) {
          yield await readModelTensorBytes(base, name, start, Math.min(COPY_CHUNK_BYTES, info.nbytes - start));
        }
      },
    };
  });
}

/** Base tensors grouped by the file holding them, each group in file order. */
function tensorsByFile(base: ModelFolder): Map<string, string[]> {
  const out = new Map<string, string[]>(base.files.map((f) => [f, []]));
  const names = [...base.tensors.keys()].sort((x, y) => tensorLocation(base, x).info.fileOffset - tensorLocation(base, y).info.fileOffset);
  for (const name of names) out.get(tensorLocation(base, name).header.path)!.push(name);
  return out;
}

/** Writes the merged model folder to `outDir` atomically; refuses an existing non-empty folder unless `overwrite`. */
export async function writeMergedModel(base: ModelFolder, run: RunAdapter, outDir: string, opts: { overwrite?: boolean } = {}): Promise<WrittenFile[]> {
  if (base.source !== 'hf') {
    // The merged model is a Hugging Face folder written tensor by tensor in the base's own dtypes and shards; a GGUF
    // base has neither (and its quantised blocks would be re-quantised), so it needs the original folder.
    throw new Error(`${base.dir} is a GGUF file: a merged export needs the base model's Hugging Face folder (pass it with --model DIR), or export --format gguf for llama.cpp`);
  }
  const adapted = new Map(run.modules.map((m) => [m.weightName, m]));
  for (const name of adapted.keys()) tensorLocation(base, name); // a missing base weight fails before any writing
  return writeFolderAtomically(outDir, opts.overwrite ?? false, async (tempDir) => {
    const files: WrittenFile[] = [];
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (const [path, names] of tensorsByFile(base)) {
      const file = basename(path);
      const tensors = fileTensors(base, names, adapted, run);
      const metadata = tensorLocation(base, names[0]!).header.metadata;
      const { bytes } = await writeSafetensorsStream(join(tempDir, file), tensors, metadata);
      files.push({ name: file, bytes });
      for (const t of tensors) {
        weightMap[t.name] = file;
        totalSize += elementCount(t.shape) * DTYPE_BYTES[t.dtype];
      }
    }
    if (base.files.length > 1) {
      // Sizes may differ from the base's index (an adapted non-float tensor became F32): write it fresh.
      const index = JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n';
      await atomicWriteFile(join(tempDir, 'model.safetensors.index.json'), index);
      files.push({ name: 'model.safetensors.index.json', bytes: Buffer.byteLength(index) });
    }
    for (const name of MODEL_SIDE_FILES) {
      const from = join(base.dir, name);
      if (!(await access(from).then(() => true, () => false))) continue;
      await copyFileDurably(from, join(tempDir, name));
      files.push({ name, bytes: (await stat(from)).size });
    }
    return files;
  });
}
