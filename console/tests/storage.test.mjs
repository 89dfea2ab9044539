// The Storage page against the simulated FS-NEW: the second field note's CSV volume, VM1 near
// 867 IOPS on node 1 and VM2 near 715 on node 2, the storage server counting ~1505 of their
// ~1582, then redirected I/O funnelling node 2 through the coordinator.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openConsole, startFerry, waitFor } from "./harness.mjs";

const VOLUME = "C:\\ClusterStorage\\Volume1";
const V = encodeURIComponent(VOLUME);
const TOLERANCE = 0.03;

let ferry;
let consolePage;

before(async () => {
  ferry = await startFerry({ groups: 2, shares: 3 });
  consolePage = await openConsole(ferry);
});

after(async () => {
  await consolePage?.close();
  await ferry?.stop();
});

const near = (value, expected) => Math.abs(value - expected) <= expected * TOLERANCE;

function sinceMinutes(minutes) {
  return `from=${encodeURIComponent(new Date(Date.now() - minutes * 60_000).toISOString())}`;
}

/** The summary table's "last" figures, as the page shows them. */
async function lastFigures(page) {
  const read = async (key) => Number((await page.locator(`table.storage-summary tr[data-series="${key}"] td.last`).innerText()).trim());
  return {
    n1: await read("FS-NEW-n1"),
    n2: await read("FS-NEW-n2"),
    sum: await read("node-sum"),
    storage: await read("storage"),
  };
}

/**
 * The sim's workloads repeat on a 600 s cycle aligned to the epoch (crates/sim/src/perf.rs:
 * VM1 from 10 s, VM2 from 40 s, each ramping 10 s, both stopping at 570 s). These tests need both
 * at full load for about a minute, so they start between 52 s and 500 s into a cycle.
 */
async function steadyLoad() {
  const phase = (Date.now() / 1000) % 600;
  const wait = phase < 52 ? 52 - phase : phase > 500 ? 652 - phase : 0;
  if (wait) await new Promise((ok) => setTimeout(ok, wait * 1000));
}

test("the storage page shows each node, their sum and the storage server for Volume1", async () => {
  const { page, shot } = consolePage;
  // A volume nobody samples (the API answers 404): the page says so instead of drawing an empty chart.
  await page.goto(`${ferry.url}/console/#/storage?cluster=FS-NEW&volume=${encodeURIComponent("C:\\ClusterStorage\\Volume9")}`);
  await page.getByText("No samples yet for C:\\ClusterStorage\\Volume9 on FS-NEW").waitFor();
  assert.equal(await page.locator(".storage-chart").isHidden(), true);

  await steadyLoad();
  // Both workloads at full load in one step the API reports completely.
  await waitFor(
    async () => {
      const { body } = await ferry.api("GET", `/v1/clusters/FS-NEW/perf/volume?volume=${V}&step=10s&${sinceMinutes(5)}`);
      const { at_ms, storage, values } = body.steps;
      return at_ms.some((_, k) => storage[k] !== null && near(values[0][k] ?? 0, 867) && near(values[1][k] ?? 0, 715));
    },
    90_000,
    "both nodes' workloads in the volume view",
  );

  await page.goto(`${ferry.url}/console/#/storage?cluster=FS-NEW&volume=${V}&range=15m&step=auto`);
  const summary = page.getByRole("table", { name: "Series summary" });
  await summary.waitFor();
  // A label's accessible name ends with its select's chosen option, hence the anchored names.
  assert.equal(await page.getByRole("combobox", { name: /^Cluster/ }).inputValue(), "FS-NEW");
  assert.equal(await page.getByRole("combobox", { name: /^Volume/ }).inputValue(), VOLUME);

  let figures;
  await waitFor(
    async () => {
      figures = await lastFigures(page);
      if (near(figures.n1, 867) && near(figures.n2, 715) && near(figures.sum, 1582) && near(figures.storage, 1505)) return true;
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.waitForTimeout(1000);
      return false;
    },
    40_000,
    "the page's summary to show 867 / 715 / 1582 / 1505",
  ).catch((error) => {
    throw new Error(`${error.message}; last read ${JSON.stringify(figures)}`);
  });

  const canvas = page.locator(".storage-chart canvas").first();
  await canvas.waitFor();
  const box = await canvas.boundingBox();
  assert.ok(box && box.width > 100 && box.height > 100, `the chart's canvas has a size: ${JSON.stringify(box)}`);
  assert.equal(await page.locator(".storage-chart").getAttribute("data-shaded"), "0");
  await page.getByText("No redirected I/O in this range").waitFor();

  // The busiest volumes and nodes, from perf/top.
  await page.getByRole("link", { name: VOLUME }).waitFor();
  const nodes = page.locator("section", { has: page.getByRole("heading", { name: "Busiest nodes" }) });
  await nodes.getByRole("cell", { name: "FS-NEW-n1" }).waitFor();
  await nodes.getByRole("cell", { name: "FS-NEW-n2" }).waitFor();
  await shot("storage-before-redirect");
  assert.deepEqual(consolePage.problems, []);
});

test("redirected I/O is shaded on the chart and explained with its coordinator", async () => {
  const { page, shot } = consolePage;
  await ferry.cli(["sim", "redirect", "--dir", "sims/FS-NEW", "--volume", VOLUME, "on"]);
  await waitFor(
    async () => {
      const { body } = await ferry.api("GET", `/v1/clusters/FS-NEW/perf/redirected?volume=${V}&step=10s&${sinceMinutes(15)}`);
      return body.length > 0;
    },
    60_000,
    "the redirected-I/O detector to find the interval",
  );

  const interval = page.locator(".storage-interval-list li").first();
  await waitFor(
    async () => {
      if (await interval.isVisible()) return true;
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.waitForTimeout(1000);
      return false;
    },
    30_000,
    "the page to list the redirected interval",
  );
  const text = await interval.innerText();
  assert.match(text, /Coordinator FS-NEW-n1/);
  assert.match(text, /FS-NEW-n2's I\/O (fell|was)/);
  assert.match(text, /FS-NEW-n1 carried/);
  const chart = page.locator(".storage-chart");
  await waitFor(async () => Number(await chart.getAttribute("data-shaded")) >= 1, 5_000, "the chart to shade the interval").catch(async (error) => {
    throw new Error(`${error.message} (data-shaded=${await chart.getAttribute("data-shaded")})`);
  });
  await shot("storage-after-redirect");

  // Narrow window: everything wraps and the chart shrinks with it.
  await page.setViewportSize({ width: 420, height: 800 });
  await waitFor(async () => ((await page.locator(".storage-chart canvas").first().boundingBox())?.width ?? 999) < 420, 5_000, "the chart to shrink");
  await shot("storage-narrow");
  await page.setViewportSize({ width: 1280, height: 800 });
  assert.deepEqual(consolePage.problems, []);
});

test("a job's groups are placed on its target's nodes", async () => {
  const { page, shot } = consolePage;
  const created = await ferry.api("POST", "/v1/jobs", { source: "FS-OLD", target: "FS-NEW", name: "storage-placement", require_approval: true });
  assert.ok([200, 201].includes(created.status), `job created: ${JSON.stringify(created.body)}`);
  await page.reload();
  const section = page.locator("section", { has: page.getByRole("heading", { name: "Load-balance placement" }) });
  await section.getByLabel("Job").selectOption({ label: "storage-placement (FS-OLD → FS-NEW)" });
  await section.getByLabel("Capacity per node (transfers/s)").fill("5000");
  await section.getByRole("button", { name: "Compute placement" }).click();
  const nodesTable = section.getByRole("table", { name: "Target nodes after placement" });
  await nodesTable.waitFor();
  await nodesTable.getByRole("cell", { name: "FS-NEW-n1", exact: true }).waitFor();
  await section.getByRole("table", { name: "Assignments, largest group first" }).getByRole("cell", { name: "FS01" }).waitFor();
  await section.getByText(/^Rule:/).waitFor();
  await shot("storage-placement");
  assert.deepEqual(consolePage.problems, []);
});
