// The PROFILE reply's JSON document (docs/protocol.md "PROFILE reply") as a validated type, and the parser of
// HELLO's backends string. Not the wire codec (messages.ts) nor the planner that uses the numbers.
import { z } from 'zod';
import { ProtocolError } from './wire.js';

const ms = z.number().min(0); // finite (zod numbers refuse Infinity and NaN) and never negative
const backendName = z.string().min(1);

const backendSchema = z.object({
  name: backendName, // "cpu", "reference" or "opencl" (a same-kind secondary gets "-2": "cpu-2"); the key below
  role: z.enum(['primary', 'secondary']), // secondary: the backend SET_SPLIT gives its [0, g) share to
  device: z.string(), // free text, e.g. "arm64 neon dotprod x4 threads"
});
const layerSchema = z.object({
  layer: z.int().min(0), // global layer index
  backend: backendName,
  forwardMs: ms,
  backwardMs: ms,
});
const headsSchema = z.object({
  backend: backendName,
  attentionForwardMsPerGroup: ms,
  attentionBackwardMsPerGroup: ms,
});
const mlpSchema = z.object({
  backend: backendName,
  forwardMsPer32Cols: ms,
  backwardMsPer32Cols: ms,
});

/**
 * Plain objects, not strict: fields a later agent adds are dropped, so the host can grow its use of the profile
 * without a protocol change. Every `backend` must name an entry of `backends`.
 */
export const profileResultSchema = z
  .object({
    shape: z.object({ batch: z.int().min(1), seqLen: z.int().min(1) }),
    reps: z.int().min(1),
    backends: z.array(backendSchema).min(1),
    layers: z.array(layerSchema),
    heads: z.array(headsSchema),
    mlp: z.array(mlpSchema),
  })
  .superRefine((p, ctx) => {
    const names = new Set(p.backends.map((b) => b.name));
    if (names.size !== p.backends.length) ctx.addIssue({ code: 'custom', message: 'backends has duplicate names' });
    const roles = p.backends.map((b) => b.role);
    if (roles[0] !== 'primary' || roles.slice(1).some((r) => r !== 'secondary') || roles.length > 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['backends'],
        message: `backends must be the primary, then at most one secondary; got roles ${roles.join(', ')}`,
      });
    }
    for (const key of ['layers', 'heads', 'mlp'] as const) {
      p[key].forEach((e, i) => {
        if (!names.has(e.backend)) {
          ctx.addIssue({
            code: 'custom',
            path: [key, i, 'backend'],
            message: `backend '${e.backend}' is not one of backends (${[...names].join(', ')})`,
          });
        }
      });
    }
  });
export type ProfileResult = z.infer<typeof profileResultSchema>;
export type ProfileLayer = ProfileResult['layers'][number];
export type ProfileHeads = ProfileResult['heads'][number];
export type ProfileMlp = ProfileResult['mlp'][number];
export type ProfileBackend = ProfileResult['backends'][number];

/** Parses and validates a PROFILE reply's JSON; a ProtocolError says what is wrong, `source` names the agent. */
export function parseProfileResult(json: string, source = 'agent'): ProfileResult {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ProtocolError(`PROFILE reply from ${source} is not JSON: ${(err as Error).message}`);
  }
  const parsed = profileResultSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ProtocolError(`PROFILE reply from ${source} does not match docs/protocol.md: ${issues}`);
  }
  return parsed.data;
}

/** One entry of HELLO's backends string: `name` or `name(detail)`. */
export interface BackendDescription {
  name: string; // e.g. "cpu", "reference", "opencl", "opencl-unavailable"
  detail?: string; // what is inside the parentheses, e.g. "avx512 x2" or why OpenCL is unavailable
}

/**
 * Splits HELLO's backends string (docs/protocol.md "HELLO") at the commas outside parentheses, so a detail may
 * contain commas. Empty entries are dropped; an entry without a well-formed "(...)" suffix is all name.
 */
export function parseBackends(backends: string): BackendDescription[] {
  const entries: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < backends.length; i++) {
    const ch = backends[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      entries.push(backends.slice(start, i));
      start = i + 1;
    }
  }
  entries.push(backends.slice(start));
  const out: BackendDescription[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry.length === 0) continue;
    const open = entry.indexOf('(');
    if (open > 0 && entry.endsWith(')')) {
      out.push({ name: entry.slice(0, open).trim(), detail: entry.slice(open + 1, -1) });
    } else {
      out.push({ name: entry });
    }
  }
  return out;
}
