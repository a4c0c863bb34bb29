// A stage's attention heads, one row per layer and one cell per head, coloured by the backend that computes it:
// the first gpuKvGroups KV groups (and their query heads) run on the phone's GPU through OpenCL, the rest on its
// CPU (the agent's SET_SPLIT takes the leading column slices). Plain HTML cells: no measuring, no canvas.

export interface HeadsMapProps {
  layerStart: number;
  layerEnd: number;
  numHeads: number;
  numKvHeads: number;
  /** KV groups on the GPU (0: CPU only). */
  gpuKvGroups: number;
  /** Share of the MLP's intermediate columns on the GPU, 0..1. */
  gpuMlpFraction: number;
  /** The GPU's name, for the legend and tooltips. */
  gpuName: string | null;
}

/** Beyond this many layers the rows would dwarf the card; every layer of a stage has the same split anyway. */
const MAX_ROWS = 24;

export function HeadsMap(p: HeadsMapProps) {
  const layers = Math.max(0, p.layerEnd - p.layerStart);
  const perGroup = p.numKvHeads > 0 ? p.numHeads / p.numKvHeads : 1;
  const gpuHeads = Math.min(p.numHeads, p.gpuKvGroups * perGroup);
  const shown = Math.min(layers, MAX_ROWS);
  const gpu = p.gpuName ?? 'GPU';
  const describe = (layer: number) =>
    gpuHeads > 0
      ? `layer ${layer}: heads 0–${gpuHeads - 1} on ${gpu}, ${gpuHeads}–${p.numHeads - 1} on the CPU; MLP ${Math.round(p.gpuMlpFraction * 100)}% on ${gpu}`
      : `layer ${layer}: all ${p.numHeads} heads and the MLP on the CPU`;
  return (
    <div className="heads-map" data-testid="heads-map" aria-label={`attention heads of layers ${p.layerStart}–${p.layerEnd - 1} by backend`}>
      {Array.from({ length: shown }, (_, i) => p.layerStart + i).map((layer) => (
        <div key={layer} className="heads-row" title={describe(layer)}>
          <span className="heads-layer">L{layer}</span>
          <span className="heads-cells" style={{ gridTemplateColumns: `repeat(${p.numHeads}, 1fr)` }}>
            {Array.from({ length: p.numHeads }, (_, h) => (
              <span key={h} className={h < gpuHeads ? 'head gpu' : 'head cpu'} />
            ))}
          </span>
        </div>
      ))}
      {layers > shown && <div className="sub">… {layers - shown} more layers, split the same way</div>}
      <div className="heads-legend sub">
        <span className="head cpu" /> CPU {p.numHeads - gpuHeads}/{p.numHeads} heads
        {gpuHeads > 0 && (
          <>
            {' '}
            <span className="head gpu" /> {gpu} {gpuHeads}/{p.numHeads} heads, MLP {Math.round(p.gpuMlpFraction * 100)}%
          </>
        )}
      </div>
    </div>
  );
}
