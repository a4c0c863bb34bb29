// One live per-step curve drawn with uPlot (the loss, tokens/s): created once, resized with its box, fed new data on
// every change. It keeps no training state (the reducer owns the arrays) and draws nothing but its one series.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface StepChartProps {
  steps: number[];
  values: number[];
  /** Series and y-axis label, e.g. "loss". */
  label: string;
  /** CSS variable holding the stroke colour (read from the page, so the theme decides), and its fallback. */
  colorVar: string;
  fallbackColor: string;
  heightPx: number;
  digits: number;
  /** Shade under the curve. */
  fill?: boolean;
  /** Start the y axis at 0 (throughput: a small wobble must not look like a collapse). */
  fromZero?: boolean;
  testId: string;
  emptyText: string;
  className?: string;
}

// Steps are whole numbers: never put a tick at step 2.5.
const STEP_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000];

export function StepChart(p: StepChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const color = getComputedStyle(el).getPropertyValue(p.colorVar).trim() || p.fallbackColor;
    const axis = { stroke: '#6b7280', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#e5e7eb', width: 1 } };
    const width = () => Math.max(200, el.clientWidth);
    const u = new uPlot(
      {
        width: width(),
        height: p.heightPx,
        scales: { x: { time: false }, ...(p.fromZero ? { y: { range: (_u: uPlot, _min: number, max: number) => [0, max > 0 ? max * 1.15 : 1] as uPlot.Range.MinMax } } : {}) },
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        series: [
          { label: 'step', value: (_u, v) => (v == null ? '–' : String(v)) },
          {
            label: p.label,
            stroke: color,
            width: 2,
            ...(p.fill ? { fill: `${color}14` } : {}),
            points: { show: true, size: 4 },
            value: (_u, v) => (v == null ? '–' : v.toFixed(p.digits)),
          },
        ],
        axes: [
          { ...axis, label: 'step', labelSize: 18, incrs: STEP_INCRS },
          { ...axis, label: p.label, labelSize: 18, size: 56 },
        ],
      },
      [[], []],
      el,
    );
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: width(), height: p.heightPx }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The options are fixed for a chart's life; only the data changes (next effect).
  }, []);

  useEffect(() => {
    plot.current?.setData([p.steps, p.values]);
  }, [p.steps, p.values]);

  return (
    <div className={`chart ${p.className ?? ''}`} ref={box} data-testid={p.testId} data-points={p.values.length}>
      {p.values.length === 0 && <div className="chart-empty">{p.emptyText}</div>}
    </div>
  );
}

export function LossChart({ steps, losses }: { steps: number[]; losses: number[] }) {
  return (
    <StepChart steps={steps} values={losses} label="loss" colorVar="--accent" fallbackColor="#2563eb" heightPx={240} digits={4} fill
      testId="loss-chart" emptyText="The loss curve appears with the first step." />
  );
}

export function ThroughputChart({ steps, tokPerSec }: { steps: number[]; tokPerSec: number[] }) {
  return (
    <StepChart steps={steps} values={tokPerSec} label="tokens/s" colorVar="--ok" fallbackColor="#15803d" heightPx={150} digits={1} fromZero
      testId="throughput-chart" emptyText="Tokens/s appear with the first step." className="chart-small" />
  );
}
