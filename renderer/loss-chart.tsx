// Live loss curve drawn with uPlot: created once, resized with its box, fed new data on every `step` event.
// It keeps no training state (the reducer owns the arrays) and draws nothing but the one series.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export function LossChart({ steps, losses }: { steps: number[]; losses: number[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const accent = getComputedStyle(el).getPropertyValue('--accent').trim() || '#2563eb';
    const axis = { stroke: '#6b7280', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#e5e7eb', width: 1 } };
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: 240,
        scales: { x: { time: false } },
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        series: [
          { label: 'step', value: (_u, v) => (v == null ? '–' : String(v)) },
          {
            label: 'loss',
            stroke: accent,
            width: 2,
            fill: `${accent}14`,
            points: { show: true, size: 4 },
            value: (_u, v) => (v == null ? '–' : v.toFixed(4)),
          },
        ],
        axes: [
          // Steps are whole numbers: never put a tick at step 2.5.
          { ...axis, label: 'step', labelSize: 18, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000] },
          { ...axis, label: 'loss', labelSize: 18, size: 56 },
        ],
      },
      [[], []],
      el,
    );
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 240 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData([steps, losses]);
  }, [steps, losses]);

  return (
    <div className="chart" ref={box} data-testid="loss-chart" data-points={losses.length}>
      {losses.length === 0 && <div className="chart-empty">The loss curve appears with the first step.</div>}
    </div>
  );
}
