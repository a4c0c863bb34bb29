// The latest step's pipeline as a Gantt chart: one row per stage, a bar per forward (F) or backward (B) of each
// micro-batch, times in ms from the step's first span. Plain HTML boxes placed in percent of the step's length, so
// it needs no measuring and its text never scales with the width (an SVG viewBox would stretch the labels).
import type { PipelineSpan } from '../electron/core/api/types.js';
import { formatMs } from './format.js';

export interface GanttRow {
  stage: number;
  /** What the row is called: the phone's name (its serial is in the tooltip). */
  label: string;
  serial: string;
}

/** A round tick step (1, 2 or 5 × 10^k ms) giving about `target` ticks over `totalMs`. */
export function tickStep(totalMs: number, target = 6): number {
  const raw = Math.max(totalMs, 1) / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
}

export function PipelineGantt({ step, spans, rows }: { step: number; spans: PipelineSpan[]; rows: GanttRow[] }) {
  if (spans.length === 0) return <p className="hint">The pipeline appears after the first step.</p>;
  const t0 = Math.min(...spans.map((s) => s.startMs));
  const total = Math.max(1, Math.max(...spans.map((s) => s.endMs)) - t0);
  const pct = (ms: number) => `${(ms / total) * 100}%`;
  const every = tickStep(total);
  const ticks: number[] = [];
  for (let ms = 0; ms <= total; ms += every) ticks.push(ms);
  // Stages that sent spans but are not in the plan (should not happen) still get a row rather than vanishing.
  const known = new Set(rows.map((r) => r.stage));
  const extra = [...new Set(spans.map((s) => s.stage))].filter((st) => !known.has(st)).sort((a, b) => a - b);
  const allRows = [...rows, ...extra.map((stage) => ({ stage, label: `Stage ${stage}`, serial: '' }))];

  return (
    <div className="gantt" data-testid="pipeline-gantt" data-step={step} data-spans={spans.length}>
      {allRows.map((row) => (
        <div className="gantt-row" key={row.stage}>
          <div className="gantt-label" title={row.serial}>
            <span className="gantt-stage">{row.stage}</span> {row.label}
          </div>
          <div className="gantt-track">
            {spans
              .filter((s) => s.stage === row.stage)
              .map((s) => (
                <div
                  key={`${s.kind}${s.micro}`}
                  className={`gantt-bar gantt-${s.kind}`}
                  style={{ left: pct(s.startMs - t0), width: pct(s.endMs - s.startMs) }}
                  title={`${s.kind === 'F' ? 'forward' : 'backward'} micro-batch ${s.micro} · ${formatMs(s.startMs - t0)} → ${formatMs(s.endMs - t0)} (${formatMs(s.endMs - s.startMs)})`}
                >
                  {s.micro}
                </div>
              ))}
          </div>
        </div>
      ))}
      <div className="gantt-row gantt-axis" aria-hidden="true">
        <div className="gantt-label">ms</div>
        <div className="gantt-track">
          {ticks.map((ms) => (
            <span key={ms} className="gantt-tick" style={{ left: pct(ms) }}>
              {ms}
            </span>
          ))}
        </div>
      </div>
      <div className="gantt-legend">
        <span className="gantt-key gantt-F" /> forward <span className="gantt-key gantt-B" /> backward · number = micro-batch · step {step},{' '}
        {formatMs(total)}
      </div>
    </div>
  );
}
