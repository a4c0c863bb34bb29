// Live tokens/s curve, drawn with uPlot like the loss chart (loss-chart.tsx) but smaller: it sits under the loss curve
// and only needs to show whether throughput is steady. It keeps no state of its own; the reducer owns the arrays.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const HEIGHT = 150;

export function ThroughputChart({ steps, tokPerSec }: { steps: number[]; tokPerSec: number[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ok = getComputedStyle(el).getPropertyValue('--ok').trim() || '#15803d';
    const axis = { stroke: '#6b7280', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#e5e7eb', width: 1 } };
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: HEIGHT,
        // Tokens/s starts from 0 so a small wobble does not look like a collapse.
        scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        series: [
          { label: 'step', value: (_u, v) => (v == null ? '–' : String(v)) },
          { label: 'tokens/s', stroke: ok, width: 2, points: { show: true, size: 3 }, value: (_u, v) => (v == null ? '–' : v.toFixed(1)) },
        ],
        axes: [
          { ...axis, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000] },
          { ...axis, label: 'tokens/s', labelSize: 18, size: 56 },
        ],
      },
      [[], []],
      el,
    );
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData([steps, tokPerSec]);
  }, [steps, tokPerSec]);

  return (
    <div className="chart chart-small" ref={box} data-testid="throughput-chart" data-points={tokPerSec.length}>
      {tokPerSec.length === 0 && <div className="chart-empty">Tokens/s appear with the first step.</div>}
    </div>
  );
}
