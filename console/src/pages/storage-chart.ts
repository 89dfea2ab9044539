// The cluster-wide chart of one volume: each node's I/O stacked (so the stack's top is what the
// nodes sent together), the node sum, the storage server's count (dashed) and the gap in percent
// on its own axis, with the redirected-I/O intervals shaded behind the series.
import uPlot from "uplot";
import type { Schemas } from "../api";

type VolumeView = Schemas["VolumeView"];
type Interval = Schemas["RedirectedInterval"];

const NODE_COLOURS = ["#1f5fbf", "#2a9d8f", "#b5838d", "#8e6cbf", "#e76f51", "#6a994e", "#bc6c25", "#457b9d"];
const SUM_COLOUR = "#14213d";
const STORAGE_COLOUR = "#9a6700";
const GAP_COLOUR = "#c62828";
const SHADE = "rgba(198, 40, 40, 0.13)";
const SHADE_EDGE = "rgba(198, 40, 40, 0.55)";

export function rate(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(1);
}

export function percent(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return `${value.toFixed(1)}\u00a0%`;
}

function withAlpha(hex: string, alpha: number): string {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** The newest value of a series: what the legend shows while the cursor is off the chart. */
function latest(values: ArrayLike<number | null | undefined> | undefined): number | null {
  if (!values) return null;
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

interface Columns {
  data: uPlot.AlignedData;
  /** Each node's own values, for the legend: the plotted ones are cumulative. */
  raw: (number | null)[][];
}

/**
 * uPlot has no stacking: series i carries nodes 0..i summed. A node without a sample in a step
 * counts as 0 there when another node has one, as the API's node sum does; a step where no node
 * reported stays a gap.
 */
function columns(view: VolumeView): Columns {
  const steps = view.steps;
  const xs = steps.at_ms.map((ms) => ms / 1000);
  const raw = view.nodes.map((_, i) => steps.values[i] ?? steps.at_ms.map(() => null));
  const anyNode = steps.at_ms.map((_, k) => raw.some((values) => values[k] !== null && values[k] !== undefined));
  const running = steps.at_ms.map(() => 0);
  const stacked = raw.map((values) =>
    values.map((v, k) => {
      running[k] = (running[k] ?? 0) + (v ?? 0);
      return anyNode[k] ? (running[k] ?? 0) : null;
    }),
  );
  const data: (number | null)[][] = [...stacked, steps.node_sum, steps.storage, steps.gap_pct];
  return { data: [xs, ...data] as uPlot.AlignedData, raw };
}

export interface VolumeChart {
  /** Draws a new view; rebuilds the chart only when the nodes changed. */
  update(view: VolumeView, intervals: Interval[]): void;
  destroy(): void;
}

/**
 * The chart lives in `container`, whose `data-shaded` attribute tells how many redirected
 * intervals the last draw shaded (a canvas is not text, so tests and tools read it there).
 */
export function volumeChart(container: HTMLElement): VolumeChart {
  let plot: uPlot | null = null;
  let nodes: string[] = [];
  let raw: (number | null)[][] = [];
  let intervals: Interval[] = [];
  let lastWidth = 0;
  let stepSecs = 0;

  const size = () => ({
    width: Math.max(240, container.clientWidth),
    height: container.clientWidth < 560 ? 260 : 340,
  });

  // Behind the series: drawClear runs after the canvas is cleared and before anything is drawn.
  const shadeRedirected = (u: uPlot) => {
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    let shaded = 0;
    for (const interval of intervals) {
      const x0 = Math.max(left, u.valToPos(interval.start_ms / 1000, "x", true));
      const x1 = Math.min(left + width, u.valToPos(interval.end_ms / 1000, "x", true));
      if (!(x1 > x0)) continue;
      ctx.save();
      ctx.fillStyle = SHADE;
      ctx.fillRect(x0, top, x1 - x0, height);
      ctx.fillStyle = SHADE_EDGE;
      ctx.fillRect(x0, top, Math.max(1, devicePixelRatio), height);
      ctx.restore();
      shaded += 1;
    }
    container.dataset["shaded"] = String(shaded);
  };

  function build(view: VolumeView, data: uPlot.AlignedData): void {
    plot?.destroy();
    nodes = [...view.nodes];
    const nodeSeries: uPlot.Series[] = view.nodes.map((node, i) => {
      const colour = NODE_COLOURS[i % NODE_COLOURS.length] ?? "#1f5fbf";
      return {
        label: node,
        stroke: colour,
        width: 1,
        fill: withAlpha(colour, 0.35),
        value: (_u, _v, _si, idx) => rate(idx === null ? latest(raw[i] ?? []) : raw[i]?.[idx]),
      };
    });
    // Each stacked series is filled down to the one below it, not to zero.
    const bands: uPlot.Band[] = view.nodes.slice(1).map((_, i) => ({ series: [i + 2, i + 1] as [number, number] }));
    const opts: uPlot.Options = {
      ...size(),
      class: "volume-plot",
      series: [
        { label: "time", value: (u, v, _si, idx) => (idx === null ? "latest" : new Date(v * 1000).toLocaleTimeString()) },
        ...nodeSeries,
        { label: "node sum", stroke: SUM_COLOUR, width: 2, value: (u, v, si, idx) => rate(idx === null ? latest(u.data[si]) : v) },
        { label: "storage server", stroke: STORAGE_COLOUR, width: 2, dash: [8, 5], value: (u, v, si, idx) => rate(idx === null ? latest(u.data[si]) : v) },
        { label: "gap", stroke: GAP_COLOUR, width: 1, dash: [2, 3], scale: "%", value: (u, v, si, idx) => percent(idx === null ? latest(u.data[si]) : v) },
      ],
      bands,
      // One step past the last one: a step is drawn at its start, and an interval that began in
      // the newest step must still have room to be shaded.
      scales: {
        x: { time: true, range: (_u, min, max) => [min, max + stepSecs] },
        // Stacked areas read against zero; the gap axis keeps zero in view so its sign shows.
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] },
        "%": { range: (_u, min, max) => [Math.min(0, min) - 1, Math.max(0, max) + 1] },
      },
      axes: [
        {},
        { label: "transfers/s", size: 60 },
        { scale: "%", side: 1, label: "gap %", grid: { show: false }, size: 50 },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: { drawClear: [shadeRedirected] },
    };
    plot = new uPlot(opts, data, container);
    lastWidth = container.clientWidth;
  }

  const observer = new ResizeObserver(() => {
    if (!plot || container.clientWidth === lastWidth) return;
    lastWidth = container.clientWidth;
    plot.setSize(size());
  });
  observer.observe(container);

  return {
    update(view, newIntervals) {
      intervals = newIntervals;
      stepSecs = view.step_ms / 1000;
      const cols = columns(view);
      raw = cols.raw;
      const sameNodes = plot && nodes.length === view.nodes.length && nodes.every((n, i) => n === view.nodes[i]);
      if (plot && sameNodes) plot.setData(cols.data);
      else build(view, cols.data);
    },
    destroy() {
      observer.disconnect();
      plot?.destroy();
      plot = null;
    },
  };
}
