// Storage: the cluster-wide view of one volume. Each node's disk counters only show the I/O that
// node sent; the volume's real load is their sum, which the storage server should match (the
// gap is what the nodes do not show). In redirected I/O the other nodes' counters fall to zero
// while the coordinator carries everything: those intervals are shaded and explained.
//
// The view is linkable: `#/storage?cluster=NAME&volume=...&range=1h&step=auto`.
import { ApiError, api, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { field, h, link, loading, none, replace, section, time } from "../dom";
import { percent, rate, volumeChart, type VolumeChart } from "./storage-chart";
import { placementSection } from "./storage-placement";

type VolumeView = Schemas["VolumeView"];
type Interval = Schemas["RedirectedInterval"];
type TopEntry = Schemas["TopEntry"];

const RANGES: [string, string, number][] = [
  ["15m", "Last 15 min", 15 * 60_000],
  ["1h", "Last hour", 3_600_000],
  ["6h", "Last 6 hours", 6 * 3_600_000],
  ["24h", "Last 24 hours", 24 * 3_600_000],
];
const STEPS: [string, string][] = [
  ["auto", "Auto"],
  ["10s", "10 s"],
  ["30s", "30 s"],
  ["1m", "1 min"],
  ["5m", "5 min"],
  ["15m", "15 min"],
  ["1h", "1 hour"],
];
/** About a hundred points whatever the range; never finer than the agents' 10 s samples. */
const AUTO_STEP: Record<string, string> = { "15m": "10s", "1h": "30s", "6h": "5m", "24h": "15m" };
const REFRESH_MS = 10_000;
const TOP = 10;
const VOLUME_CHOICES = 100;

function options(choices: [string, string][], selected: string): HTMLOptionElement[] {
  return choices.map(([value, label]) => h("option", { value, selected: value === selected }, label));
}

export const storagePage: Page = async (root, ctx) => {
  replace(root, h("h1", null, "Storage"), loading());
  const clusters = (await ok(api.GET("/v1/clusters", { params: { query: { limit: 1000 } } }))).items;
  if (!clusters.length) {
    replace(root, h("h1", null, "Storage"), none("No cluster yet: `ferry cluster create`."));
    return;
  }

  const wanted = ctx.query.get("cluster");
  const initialCluster = clusters.find((c) => c.name === wanted || c.id === wanted) ?? clusters[0]!;
  const rangeKey = RANGES.some(([k]) => k === ctx.query.get("range")) ? ctx.query.get("range")! : "15m";
  const stepKey = STEPS.some(([k]) => k === ctx.query.get("step")) ? ctx.query.get("step")! : "auto";

  const clusterSelect = h(
    "select",
    { name: "cluster" },
    ...clusters.map((c) => h("option", { value: c.name, selected: c === initialCluster }, c.name)),
  );
  const volumeSelect = h("select", { name: "volume" });
  let volume = ctx.query.get("volume") ?? "";
  const rangeSelect = h("select", { name: "range" }, ...options(RANGES.map(([k, label]) => [k, label]), rangeKey));
  const stepSelect = h("select", { name: "step" }, ...options(STEPS, stepKey));
  const refresh = h("button", { type: "submit" }, "Refresh");
  const updated = h("span", { class: "muted storage-updated" });
  const controls = h(
    "form",
    { class: "row storage-controls", "aria-label": "What to show" },
    field("Cluster", clusterSelect),
    field("Volume", volumeSelect),
    field("Range", rangeSelect),
    field("Step", stepSelect),
    refresh,
    updated,
  );

  const volumeTitle = h("h2", null, "Volume");
  const volumeNote = h("p", { class: "muted" });
  const volumeProblem = h("div");
  const chartBox = h("div", { class: "chart storage-chart", "data-shaded": "0", role: "figure", "aria-label": "Transfers per second of each node, stacked, with the node sum, the storage server and the gap" });
  const summary = h("div", { class: "scroll" });
  const redirectedList = h("div", { class: "storage-intervals" });
  const volumeSection = h(
    "section",
    { class: "storage-volume" },
    volumeTitle,
    volumeNote,
    volumeProblem,
    chartBox,
    h("h3", null, "Summary"),
    summary,
    h("h3", null, "Redirected I/O"),
    redirectedList,
  );
  const topVolumes = h("div", { class: "scroll" });
  const topNodes = h("div", { class: "scroll" });

  /** One problem for a failed refresh, whichever read failed; the page keeps what it last read. */
  const readProblem = h("div");

  replace(
    root,
    h("h1", null, "Storage"),
    controls,
    readProblem,
    volumeSection,
    h("div", { class: "grid" }, section("Busiest volumes", topVolumes), section("Busiest nodes", topNodes)),
    placementSection(),
  );

  const chart: VolumeChart = volumeChart(chartBox);
  let ticket = 0;
  /** What the page shows (its choices, as `showing()` names them) and when that was read. */
  let shownFor = "";
  let shownAt = "";

  function selected(): { cluster: string; range: string; step: string; from: string; to: string; stepParam: string } {
    const range = rangeSelect.value;
    const span = RANGES.find(([k]) => k === range)?.[2] ?? 15 * 60_000;
    const now = Date.now();
    const step = stepSelect.value;
    return {
      cluster: clusterSelect.value,
      range,
      step,
      from: new Date(now - span).toISOString(),
      to: new Date(now).toISOString(),
      stepParam: step === "auto" ? (AUTO_STEP[range] ?? "1m") : step,
    };
  }

  // replaceState rather than ctx.go: the page keeps its controls (and focus) instead of rebuilding.
  function remember(): void {
    const q = new URLSearchParams({ cluster: clusterSelect.value });
    if (volume) q.set("volume", volume);
    q.set("range", rangeSelect.value);
    q.set("step", stepSelect.value);
    history.replaceState(history.state, "", `#/storage?${q.toString()}`);
  }

  /**
   * The volume choices, by name: the busiest-first ranking reorders on every refresh, and
   * rebuilding the options would close the list under the person choosing. They are rebuilt
   * only when a volume comes or goes.
   */
  function fillVolumes(entries: TopEntry[]): void {
    // Without a choice, the busiest volume is shown.
    if (!volume && entries[0]) volume = entries[0].name;
    const listed = entries.find((e) => e.name.toLowerCase() === volume.toLowerCase());
    if (listed) volume = listed.name;
    const names = [...new Set([...entries.map((e) => e.name), ...(volume ? [volume] : [])])].sort((a, b) => a.localeCompare(b));
    const current = Array.from(volumeSelect.options).map((o) => o.value);
    if (current.length !== names.length || current.some((n, i) => n !== names[i])) {
      replace(volumeSelect, ...names.map((n) => h("option", { value: n }, n)));
    }
    if (volumeSelect.value !== volume) volumeSelect.value = volume;
    volumeSelect.disabled = names.length === 0;
  }

  /** The choices a read was made for: a failed refresh of the same choices keeps what is shown. */
  function showing(s: ReturnType<typeof selected>): string {
    return JSON.stringify([s.cluster, volume, s.range, s.step]);
  }

  function readFine(s: ReturnType<typeof selected>): void {
    replace(readProblem);
    shownFor = showing(s);
    shownAt = new Date().toLocaleTimeString();
    updated.textContent = `Updated ${shownAt}`;
  }

  /** `topsRead`: the busiest lists were read fine in this round, only the volume's read failed. */
  function readFailed(s: ReturnType<typeof selected>, error: unknown, topsRead = false): void {
    if (shownFor !== showing(s)) {
      // What is on screen is for other choices: it would mislead under these.
      showEmpty("");
      if (!topsRead) {
        replace(topVolumes);
        replace(topNodes);
      }
      shownFor = "";
      shownAt = "";
    }
    updated.textContent = shownAt ? `Showing what was read at ${shownAt}` : "";
    replace(readProblem, problemView(error));
  }

  async function load(): Promise<void> {
    const mine = ++ticket;
    const s = selected();
    const range = { from: s.from, to: s.to, step: s.stepParam };
    const path = { id: s.cluster };
    let volumes: TopEntry[];
    let nodes: TopEntry[];
    try {
      [volumes, nodes] = await Promise.all([
        ok(api.GET("/v1/clusters/{id}/perf/top", { params: { path, query: { ...range, by: "volume", limit: VOLUME_CHOICES } } })),
        ok(api.GET("/v1/clusters/{id}/perf/top", { params: { path, query: { ...range, by: "node", limit: TOP } } })),
      ]);
    } catch (error) {
      if (mine !== ticket) return;
      readFailed(s, error);
      return;
    }
    if (mine !== ticket) return;
    fillVolumes(volumes);
    remember();
    const volumeLink = (name: string) => `/storage?${new URLSearchParams({ cluster: s.cluster, volume: name, range: s.range, step: s.step }).toString()}`;
    replace(topVolumes, topTable("Volume", volumes.slice(0, TOP), volumeLink));
    replace(topNodes, topTable("Node", nodes, null));

    if (!volume) {
      readFine(s);
      showEmpty(`No samples yet for ${s.cluster} in this range: its agents send them every 10 s once they run.`);
      return;
    }
    volumeTitle.textContent = `Volume ${volume}`;
    let view: VolumeView;
    let intervals: Interval[];
    try {
      [view, intervals] = await Promise.all([
        ok(api.GET("/v1/clusters/{id}/perf/volume", { params: { path, query: { ...range, volume } } })),
        ok(api.GET("/v1/clusters/{id}/perf/redirected", { params: { path, query: { ...range, volume } } })),
      ]);
    } catch (error) {
      if (mine !== ticket) return;
      // The server answers 404 for a volume without a sample: that is the empty state, not a fault.
      if (error instanceof ApiError && error.status === 404) {
        readFine(s);
        showEmpty(`No samples yet for ${volume} on ${s.cluster}: ${error.problem?.detail ?? "the server knows no such volume"}.`);
      } else {
        readFailed(s, error, true);
      }
      return;
    }
    if (mine !== ticket) return;
    replace(volumeProblem);
    readFine(s);
    const present = (v: number | null | undefined) => v !== null && v !== undefined;
    const hasSamples = view.steps.node_sum.some(present) || view.steps.storage.some(present);
    if (!hasSamples) {
      showEmpty(`No samples yet for ${view.volume} on ${s.cluster} in this range.`);
      return;
    }
    chartBox.hidden = false;
    volumeNote.textContent = `${view.counter} · ${view.steps.at_ms.length} steps of ${view.step_ms / 1000} s, read from ${view.resolution === "raw" ? "raw samples" : `${view.resolution} rollups`}. Stacked areas: each node's own I/O; shaded: redirected I/O.`;
    chart.update(view, intervals);
    replace(summary, summaryTable(view));
    replace(redirectedList, intervalList(intervals));
  }

  function showEmpty(message: string): void {
    replace(volumeProblem, message ? none(message) : null);
    chartBox.hidden = true;
    chartBox.dataset["shaded"] = "0";
    volumeNote.textContent = "";
    replace(summary);
    replace(redirectedList);
  }

  controls.addEventListener("submit", (event) => {
    event.preventDefault();
    void load();
  });
  clusterSelect.addEventListener("change", () => {
    volume = "";
    replace(volumeSelect);
    void load();
  });
  volumeSelect.addEventListener("change", () => {
    volume = volumeSelect.value;
    void load();
  });
  rangeSelect.addEventListener("change", () => void load());
  stepSelect.addEventListener("change", () => void load());

  await load();
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") void load();
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    ticket += 1;
    chart.destroy();
  };
};

/** One step of a view, read across its columns. */
interface StepRow {
  at_ms: number;
  values: (number | null | undefined)[];
  node_sum: number | null | undefined;
  storage: number | null | undefined;
  gap_pct: number | null | undefined;
}

function stepAt(view: VolumeView, k: number): StepRow {
  const steps = view.steps;
  return {
    at_ms: steps.at_ms[k] ?? 0,
    values: view.nodes.map((_, i) => steps.values[i]?.[k]),
    node_sum: steps.node_sum[k],
    storage: steps.storage[k],
    gap_pct: steps.gap_pct[k],
  };
}

/** The newest step in which every node and the storage server reported: a partial step would understate the sum. */
function lastComplete(view: VolumeView): StepRow | undefined {
  const present = (v: number | null | undefined) => v !== null && v !== undefined;
  const count = view.steps.at_ms.length;
  for (let k = count - 1; k >= 0; k--) {
    const step = stepAt(view, k);
    if (step.values.every(present) && present(step.storage)) return step;
  }
  for (let k = count - 1; k >= 0; k--) if (present(view.steps.node_sum[k])) return stepAt(view, k);
  return undefined;
}

function mean(values: (number | null | undefined)[]): number | null {
  const present = values.filter((v): v is number => v !== null && v !== undefined);
  return present.length ? present.reduce((a, b) => a + b, 0) / present.length : null;
}

function summaryTable(view: VolumeView): HTMLElement {
  const last = lastComplete(view);
  const row = (name: string, key: string, avg: string, latest: string, share: string) =>
    h(
      "tr",
      { "data-series": key },
      h("th", { scope: "row" }, name),
      h("td", { class: "num mean" }, avg),
      h("td", { class: "num last" }, latest),
      h("td", { class: "num" }, share),
    );
  const shares = new Map(view.shares.map((s) => [s.node, s]));
  return h(
    "table",
    { class: "storage-summary", "aria-label": "Series summary" },
    h("caption", null, last ? h("span", null, "Last: the newest step every node and the storage server reported, at ", time(new Date(last.at_ms).toISOString())) : "No complete step yet."),
    h(
      "thead",
      null,
      h("tr", null, h("th", { scope: "col" }, "Series"), h("th", { scope: "col", class: "num" }, "Mean (range)"), h("th", { scope: "col", class: "num" }, "Last"), h("th", { scope: "col", class: "num" }, "Share of sum")),
    ),
    h(
      "tbody",
      null,
      ...view.nodes.map((node, i) => {
        const share = shares.get(node);
        return row(node, node, rate(mean(view.steps.values[i] ?? [])), rate(last?.values[i]), share ? percent(share.share_pct) : "—");
      }),
      row("Node sum", "node-sum", rate(mean(view.steps.node_sum)), rate(last?.node_sum), view.node_sum ? percent(100) : "—"),
      row("Storage server", "storage", rate(mean(view.steps.storage)), rate(last?.storage), "—"),
      row("Gap (storage vs node sum)", "gap", percent(mean(view.steps.gap_pct)), percent(last?.gap_pct), "—"),
    ),
  );
}

function intervalList(intervals: Interval[]): HTMLElement {
  if (!intervals.length) return none("No redirected I/O in this range: every node reached the storage directly.");
  return h(
    "ul",
    { class: "storage-interval-list" },
    ...intervals.map((iv) =>
      h(
        "li",
        { class: "redirected-note", "data-coordinator": iv.coordinator },
        h("strong", null, "Coordinator ", iv.coordinator),
        " · ",
        time(new Date(iv.start_ms).toISOString()),
        " – ",
        time(new Date(iv.end_ms).toISOString()),
        ` · ${iv.steps} step${iv.steps === 1 ? "" : "s"} · signal ${iv.evidence.signal}`,
        h("div", null, iv.evidence.summary),
      ),
    ),
  );
}

function topTable(kind: "Volume" | "Node", entries: TopEntry[], route: ((name: string) => string) | null): HTMLElement {
  if (!entries.length) return none("No samples in this range.");
  return h(
    "table",
    null,
    h("thead", null, h("tr", null, h("th", { scope: "col" }, kind), ...["Mean", "p95", "Peak"].map((t) => h("th", { scope: "col", class: "num" }, t)))),
    h(
      "tbody",
      null,
      ...entries.map((e) =>
        h(
          "tr",
          null,
          h("td", null, route ? link(route(e.name), e.name) : e.name),
          h("td", { class: "num" }, rate(e.mean)),
          h("td", { class: "num" }, rate(e.p95)),
          h("td", { class: "num" }, rate(e.peak)),
        ),
      ),
    ),
  );
}
