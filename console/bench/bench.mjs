// The console's benchmark, in the same headless Chromium as the tests, against a real server:
//   - the compressed size of the built assets;
//   - time to first render of the shares page of a 100,000-share cluster (its first page);
//   - time to first render of the job page of a 300-group job;
//   - the job page's lag from an event to the screen, p50/p99/max over every event of a job
//     (1,000 groups by default): from the event's `at` (stored by the server) to the moment its
//     entry appears in the page's event list, seen by a MutationObserver.
// Usage: FERRY_BIN=../target/release/ferry node bench/bench.mjs [--shares N] [--groups N]
//        [--lag-groups N] [--runs N] [--only shares,job,lag]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { chromiumPath, repo, startFerry, waitFor } from "../tests/harness.mjs";

const { values } = parseArgs({
  options: {
    shares: { type: "string", default: "100000" },
    groups: { type: "string", default: "300" },
    "lag-groups": { type: "string", default: "1000" },
    runs: { type: "string", default: "5" },
    only: { type: "string", default: "shares,job,lag" },
  },
});
const SHARES = Number(values.shares);
const GROUPS = Number(values.groups);
const LAG_GROUPS = Number(values["lag-groups"]);
const RUNS = Number(values.runs);
const ONLY = new Set(values.only.split(","));

const rows = [];
const row = (what, value) => {
  rows.push([what, value]);
  console.error(`${what}: ${value}`);
};
const ms = (x) => `${x.toFixed(1)} ms`;
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

// -- assets ------------------------------------------------------------------------------------
{
  let total = 0;
  for (const name of ["index.html", "assets/console.js", "assets/console.css"]) {
    const bytes = readFileSync(join(repo, "console/dist", name));
    const gz = gzipSync(bytes, { level: 9 }).length;
    total += gz;
    row(`asset ${name}`, `${bytes.length} B, ${gz} B gzip`);
  }
  row("assets total, gzip", `${(total / 1024).toFixed(1)} KiB (limit 300 KiB)`);
}

async function browserFor(ferry) {
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript((secret) => sessionStorage.setItem("ferry.token", secret), ferry.token);
  return { browser, context };
}

/** Milliseconds from navigation start until `selector` matches at least `count` elements. */
async function firstRender(context, url, selector, count) {
  const page = await context.newPage();
  await page.goto(url, { waitUntil: "commit" });
  const elapsed = await page.evaluate(
    ([selector, count]) =>
      new Promise((resolve) => {
        const check = () => {
          if (document.querySelectorAll(selector).length >= count) {
            resolve(performance.now());
            return true;
          }
          return false;
        };
        if (check()) return;
        new MutationObserver((_, observer) => check() && observer.disconnect()).observe(document, {
          childList: true,
          subtree: true,
        });
      }),
    [selector, count],
  );
  await page.close();
  return elapsed;
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return `p50 ${ms(quantile(sorted, 0.5))}, max ${ms(sorted.at(-1))} (${samples.length} loads)`;
}

// -- the shares page of a 100,000-share cluster ------------------------------------------------
if (ONLY.has("shares")) {
  const ferry = await startFerry({ clusters: false });
  try {
    const perGroup = Math.min(SHARES, 10_000);
    const groups = Math.ceil(SHARES / perGroup);
    const document = inventory("BIG", groups, perGroup, SHARES);
    const created = await ferry.api("POST", "/v1/clusters", { name: "BIG", os: "ws2008r2" });
    const started = Date.now();
    const put = await fetch(`${ferry.url}/v1/clusters/BIG/inventory`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ferry.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(document),
    });
    if (!put.ok) throw new Error(`import answered ${put.status}: ${await put.text()}`);
    console.error(`imported ${SHARES} shares in ${Date.now() - started} ms`);
    const { browser, context } = await browserFor(ferry);
    const url = `${ferry.url}/console/#/clusters/${created.body.id}/shares?group=G000`;
    const samples = [];
    for (let i = 0; i < RUNS; i += 1) samples.push(await firstRender(context, url, "main tbody tr", 100));
    row(`shares page, first page of ${SHARES} shares`, summary(samples));
    await browser.close();
  } finally {
    await ferry.stop();
  }
}

// -- the job page: first render of GROUPS groups, then event lag over LAG_GROUPS -----------------
for (const [groups, measureLag] of [[GROUPS, false], [LAG_GROUPS, true]]) {
  if (!ONLY.has(measureLag ? "lag" : "job")) continue;
  const ferry = await startFerry({ clusters: false, env: { FERRY_AGENT_LEASE_MS: "60000", FERRY_AGENT_DOWN_AFTER_MS: "120000" } });
  try {
    const parallel = "20";
    for (const [name, os, g, spare] of [["OLD", "ws2003", groups, 0], ["MID", "ws2008", 0, Math.min(groups, 100)], ["NEW", "ws2008r2", 0, 0]]) {
      await ferry.cli(["sim", "create", "--dir", `sims/${name}`, "--cluster", name, "--os", os, "--nodes", "1", "--groups", String(g), "--shares", "2", "--spare-disks", String(spare), "--latency-ms", "0", "--letters-repeat"]);
      await ferry.cli(["cluster", "create", name, "--os", os]);
      await ferry.startAgent(name, `${name}-n1`, ["--max-tasks", parallel]);
    }
    await ferry.cli(["cluster", "discover", "OLD", "--wait"], { timeout: 600_000 });
    const disk_mapping = {};
    const old = JSON.parse(readFileSync(join(ferry.dir, "sims/OLD/cluster.json"), "utf8"));
    for (const disk of old.disks.filter((d) => d.drive_letter)) {
      const out = await ferry.cli(["sim", "present-disk", "--dir", "sims/NEW", "--from", "sims/OLD", "--disk", disk.name]);
      disk_mapping[disk.name] = out.trim().split("\n").pop();
    }
    const { browser, context } = await browserFor(ferry);
    const job = await ferry.api("POST", "/v1/jobs", {
      source: "OLD",
      target: "NEW",
      disk_mapping,
      max_active_groups: Number(parallel),
      max_cluster_cutovers: Number(parallel),
      // The Kerberos retry's wait would make the run minutes longer and measure nothing.
      retry_backoff_seconds: 0,
      require_approval: !measureLag,
    });
    if (job.status !== 201) throw new Error(`job answered ${job.status}: ${JSON.stringify(job.body)}`);
    const url = `${ferry.url}/console/#/jobs/${job.body.id}`;
    if (!measureLag) {
      const samples = [];
      for (let i = 0; i < RUNS; i += 1) samples.push(await firstRender(context, url, "[data-group]", groups));
      row(`job page, first render of ${groups} groups`, summary(samples));
      await ferry.api("POST", `/v1/jobs/${job.body.id}/cancel`, {});
    } else {
      const page = await context.newPage();
      await page.goto(url);
      await page.evaluate(() => {
        // When each event's entry, and each group state, first appeared on the page.
        const seen = (window.__seen = new Map());
        const states = (window.__states = new Map());
        const note = (row, now) => {
          const key = `${row.getAttribute("data-group")}\u0000${row.getAttribute("data-state")}`;
          if (!states.has(key)) states.set(key, now);
        };
        new MutationObserver((records) => {
          const now = performance.timeOrigin + performance.now();
          for (const record of records) {
            if (record.type === "attributes" && record.target instanceof Element) {
              if (record.target.matches("tr[data-group]")) note(record.target, now);
              continue;
            }
            for (const node of record.addedNodes) {
              if (!(node instanceof Element)) continue;
              for (const el of [node, ...node.querySelectorAll("[data-seq]")]) {
                const seq = el.getAttribute("data-seq");
                if (seq && !seen.has(seq)) seen.set(seq, now);
              }
              for (const row of [node, ...node.querySelectorAll("tr[data-group]")]) {
                if (row.matches("tr[data-group]")) note(row, now);
              }
            }
          }
        }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"] });
      });
      const started = Date.now();
      await waitFor(
        async () => ["succeeded", "failed", "cancelled"].includes((await ferry.api("GET", `/v1/jobs/${job.body.id}`)).body.state),
        3_600_000,
        "the job to finish",
      );
      // The last events reach the page after the job's state does.
      await new Promise((ok) => setTimeout(ok, 2000));
      const seen = new Map(await page.evaluate(() => [...window.__seen.entries()]));
      const states = new Map(await page.evaluate(() => [...window.__states.entries()]));
      const lags = [];
      const stateLags = [];
      let missing = 0;
      let cursor;
      do {
        const q = new URLSearchParams({ limit: "1000", ...(cursor ? { cursor } : {}) });
        const logs = await ferry.api("GET", `/v1/jobs/${job.body.id}/logs?${q}`);
        for (const event of logs.body.items) {
          const at = Date.parse(event.at);
          const shown = seen.get(String(event.seq));
          if (shown === undefined) missing += 1;
          else lags.push(shown - at);
          const row = event.kind === "group" ? states.get(`${event.group}\u0000${event.state}`) : undefined;
          if (row !== undefined) stateLags.push(Math.max(0, row - at));
        }
        cursor = logs.body.next;
      } while (cursor);
      lags.sort((a, b) => a - b);
      stateLags.sort((a, b) => a - b);
      row(`job of ${groups} groups`, `${Math.round((Date.now() - started) / 1000)} s, ${lags.length + missing} events, ${missing} not shown`);
      row(`job page, event to its entry in the list (${groups} groups)`, `p50 ${ms(quantile(lags, 0.5))}, p99 ${ms(quantile(lags, 0.99))}, max ${ms(lags.at(-1))}`);
      row(`job page, group event to the group's row (${stateLags.length} state changes)`, `p50 ${ms(quantile(stateLags, 0.5))}, p99 ${ms(quantile(stateLags, 0.99))}, max ${ms(stateLags.at(-1))}`);
    }
    await browser.close();
  } finally {
    await ferry.stop();
  }
}

console.log("\n| measure | result |\n| --- | --- |");
for (const [what, value] of rows) console.log(`| ${what} | ${value} |`);

/** A cluster inventory of `shares` shares over `groups` groups, three permission entries each. */
function inventory(cluster, groups, perGroup, shares) {
  const doc = { nodes: [{ name: `${cluster}-n1` }], groups: [] };
  let left = shares;
  for (let g = 0; g < groups; g += 1) {
    const name = `G${String(g).padStart(3, "0")}`;
    const count = Math.min(perGroup, left);
    left -= count;
    doc.groups.push({
      name,
      state: "online",
      shares: Array.from({ length: count }, (_, i) => ({
        name: `share-${String(i).padStart(6, "0")}`,
        path: `E:\\data\\${name}\\share-${i}`,
        description: `share ${i} of ${name}`,
        permissions: [
          { principal: "CORP\\Domain Admins", type: "allow", access: "full" },
          { principal: `CORP\\${name}-rw`, type: "allow", access: "change" },
          { principal: "CORP\\Everyone", type: "allow", access: "read" },
        ],
      })),
    });
  }
  return doc;
}
