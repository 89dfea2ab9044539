// The plan and job pages against a real server and the simulated clusters: a job planned and
// submitted from the form, approved from its page and followed live to `verified` without a
// reload; a viewer offered no control and refused by the server when it tries anyway; and a
// feed cut by a server restart that resumes without missing or repeating an event.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openConsole, presentDisks, startFerry, waitFor } from "./harness.mjs";

const LONG = 240_000;

let ferry;
let admin;
let mapping;
let firstJob;

before(async () => {
  ferry = await startFerry();
  mapping = await presentDisks(ferry);
  admin = await openConsole(ferry);
});

after(async () => {
  await admin?.close();
  await ferry?.stop();
});

async function open(session, route) {
  await session.page.goto(`${ferry.url}/console/#${route}`);
  await session.page.locator("main h1").first().waitFor();
}

/** The seqs of a job's events as the server has them: read from the SSE feed until it is quiet. */
async function serverSeqs(jobId) {
  const controller = new AbortController();
  const response = await fetch(`${ferry.url}/v1/events?job=${jobId}`, {
    headers: { Authorization: `Bearer ${ferry.token}`, Accept: "text/event-stream" },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const seqs = [];
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let quiet;
  const arm = () => {
    clearTimeout(quiet);
    quiet = setTimeout(() => controller.abort(), 1000);
  };
  arm();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = block.split("\n").find((line) => line.startsWith("id:"));
        if (id && block.split("\n").some((line) => line.startsWith("data:"))) {
          seqs.push(Number(id.slice(3).trim()));
          arm();
        }
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") throw error;
  } finally {
    clearTimeout(quiet);
  }
  return seqs;
}

/**
 * Counts what the page asks of one job while it follows it: whole reads of the job, reads of
 * single groups, and connections of the live feed (the first, then one per reconnection).
 */
function countReads(page) {
  const requests = [];
  const seen = (request) => requests.push({ method: request.method(), url: new URL(request.url()) });
  page.on("request", seen);
  return {
    stop: () => page.off("request", seen),
    of(jobId) {
      const gets = requests.filter((r) => r.method === "GET");
      return {
        whole: gets.filter((r) => r.url.pathname === `/v1/jobs/${jobId}`).length,
        groups: gets.filter((r) => r.url.pathname.startsWith(`/v1/jobs/${jobId}/groups/`)).length,
        feeds: gets.filter((r) => r.url.pathname === "/v1/events" && r.url.searchParams.get("job") === jobId).length,
      };
    },
  };
}

/** The page read the whole job once, then again only after its feed reconnected; groups on their own. */
function assertFollowedByGroup(reads, what) {
  assert.ok(reads.whole >= 1 && reads.feeds >= 1, `${what}: ${JSON.stringify(reads)}`);
  assert.ok(reads.whole <= reads.feeds, `${what}: the whole job was re-read without a reconnection: ${JSON.stringify(reads)}`);
  assert.ok(reads.groups > 0, `${what}: no group was re-read: ${JSON.stringify(reads)}`);
}

async function pageSeqs(page) {
  return page.locator("ol.job-events li[data-seq]").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
}

test("a job planned and submitted from the form is approved on its page and verified live", { timeout: LONG }, async () => {
  const { page, problems, shot } = admin;
  await open(admin, "/plan");
  // Set once on this document: a reload or a full navigation would lose it.
  await page.evaluate(() => {
    window.__sameDocument = true;
  });

  await page.getByLabel("Source cluster").selectOption("FS-OLD");
  await page.getByLabel("Target cluster").selectOption("FS-NEW");

  // A refused request shows the server's problem, field by field.
  await page.getByRole("button", { name: "Add a recurring window" }).click();
  await page.getByLabel("Lasts (minutes)").fill("0");
  await page.getByRole("button", { name: "Plan", exact: true }).click();
  const problem = page.locator(".plan-result [role=alert]");
  await problem.waitFor();
  assert.match(await problem.textContent(), /Validation failed.*\(422\).*windows\[0\]/s);
  await page.getByRole("button", { name: "Remove window" }).click();

  // FS03 is left on FS-OLD for the restart test below.
  await page.getByRole("checkbox", { name: /^FS01\b/ }).check();
  await page.getByRole("checkbox", { name: /^FS02\b/ }).check();
  const approval = page.getByRole("checkbox", { name: /Require approval/ });
  await approval.check();
  await page.getByLabel("Source disk").nth(0).fill("Cluster Disk 1");
  await page.getByLabel("Target disk").nth(0).fill(mapping["Cluster Disk 1"]);
  await page.getByRole("button", { name: "Add a disk" }).click();
  await page.getByLabel("Source disk").nth(1).fill("Cluster Disk 2");
  await page.getByLabel("Target disk").nth(1).fill(mapping["Cluster Disk 2"]);
  await page.getByRole("button", { name: "Plan", exact: true }).click();

  const route = page.getByRole("list", { name: "Route" });
  await route.waitFor();
  assert.deepEqual(await route.locator("li b").allTextContents(), ["FS-OLD", "FS-MID", "FS-NEW"]);
  const refused = page.locator("p.refused");
  assert.match(await refused.textContent(), /Direct hop FS-OLD → FS-NEW refused: .*KB 983840/);
  // Each group's steps open from the plan, with cluster and node.
  await page.locator("details.plan-steps summary", { hasText: "FS01" }).click();
  const planned = page.locator("details.plan-steps[open] tbody tr");
  await planned.nth(10).waitFor();
  assert.match(await planned.first().textContent(), /preflight.*FS-OLD.*FS-OLD-n\d/);
  await shot("plan");

  const counted = countReads(page);
  await page.getByRole("button", { name: "Submit", exact: true }).click();
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  firstJob = page.url().split("/").pop();

  const rows = page.locator("table.job-groups tbody tr[data-group]");
  await waitFor(
    async () => {
      const states = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.state));
      return states.length === 2 && states.every((s) => s === "awaiting_approval");
    },
    120_000,
    "both groups to await approval",
  );
  await page.getByText("2 groups wait for approval.").waitFor();
  await shot("job-awaiting-approval");

  await page.getByRole("button", { name: "Approve all groups" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /service is interrupted/);
  await dialog.getByRole("button", { name: "Approve all" }).click();

  await waitFor(
    async () => {
      const cells = await rows.evaluateAll((trs) => trs.map((tr) => [tr.dataset.state, tr.cells[4]?.textContent ?? ""]));
      return cells.length === 2 && cells.every(([state, verified]) => state === "succeeded" && /verified 20\/20/.test(verified));
    },
    180_000,
    "every group to succeed and verify",
  );
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was reloaded");
  await page.locator("h1.job-title .badge", { hasText: "succeeded" }).waitFor();
  await page.getByText("40/40").waitFor();
  // Followed live by re-reading the groups that moved, not the whole job on every event.
  counted.stop();
  const reads = counted.of(firstJob);
  assertFollowedByGroup(reads, "the first job");
  if (reads.feeds === 1) assert.equal(reads.whole, 1, `the whole job was read again: ${JSON.stringify(reads)}`);

  // The network name's Kerberos retry shows: a step on its second attempt, marked as retried.
  await rows.first().getByRole("button", { name: "FS01" }).click();
  const retried = page.locator("details.job-group[open] tr.step.retried");
  await retried.first().waitFor();
  assert.match(await retried.first().textContent(), /2\/3.*retried 1×/);
  // Its log tells why the first attempt failed.
  await retried.first().getByRole("button", { name: /^Log of step/ }).click();
  await page.locator("details.job-group[open] ol.log li", { hasText: "Kerberos" }).first().waitFor();
  await shot("job-finished");

  // A narrow window: everything wraps or scrolls inside its own box, the page itself does not.
  await page.setViewportSize({ width: 420, height: 800 });
  try {
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "the job page overflows at 420px");
    await shot("job-narrow");
    await open(admin, "/plan");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "the plan page overflows at 420px");
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
  assert.deepEqual(problems, []);
});

test("a 300-group job renders at once and an update redraws only the group that moved", { timeout: LONG }, async () => {
  assert.ok(firstJob, "the first test made a job");
  const { page, problems } = admin;
  const real = (await ferry.api("GET", `/v1/jobs/${firstJob}`)).body;
  const fake = "00000000-0000-4000-8000-000000000300";
  const template = real.groups[0];
  const groups = Array.from({ length: 300 }, (_, i) => ({
    ...template,
    name: `G${String(i + 1).padStart(3, "0")}`,
    state: "cutting_over",
    verification: null,
    downtime_ended_at: null,
  }));
  // No event of the fake job is in this read: its one event (seq 1) comes after.
  let detail = { ...real, id: fake, name: "three hundred", state: "running", groups, event_seq: 0 };
  await page.route(`**/v1/jobs/${fake}`, (route) => route.fulfill({ json: detail }));
  await page.route(`**/v1/jobs/${fake}/groups/*`, (route) => {
    const name = decodeURIComponent(new URL(route.request().url()).pathname.split("/").pop());
    const group = detail.groups.find((g) => g.name === name);
    return group ? route.fulfill({ json: group }) : route.fulfill({ status: 404, contentType: "application/problem+json", json: { title: "Not found", status: 404 } });
  });
  let release;
  const released = new Promise((ok) => (release = ok));
  const event = { seq: 1, at: new Date().toISOString(), job_id: fake, kind: "group", group: "G150", state: "succeeded" };
  await page.route(`**/v1/events?job=${fake}*`, async (route) => {
    await released;
    await route.fulfill({ status: 200, contentType: "text/event-stream", body: `id: 1\ndata: ${JSON.stringify(event)}\n\n` });
  });
  const counted = countReads(page);
  try {
    const started = Date.now();
    await open(admin, `/jobs/${fake}`);
    const rows = page.locator("table.job-groups tbody tr[data-group]");
    await waitFor(async () => (await rows.count()) === 300, 10_000, "300 rows");
    const took = Date.now() - started;
    assert.ok(took < 5000, `300 groups took ${took} ms`);
    // Mark every row and its badge: a redraw of everything would lose the marks.
    await page.evaluate(() => {
      for (const tr of document.querySelectorAll("table.job-groups tbody tr")) {
        tr.__mark = true;
        tr.cells[1].firstChild.__mark = true;
      }
    });
    detail = {
      ...detail,
      groups: groups.map((g) => (g.name === "G150" ? { ...real.groups[0], name: "G150", version: (g.version ?? 0) + 1 } : g)),
    };
    release();
    const moved = page.locator("tr[data-group=G150]");
    await waitFor(async () => (await moved.getAttribute("data-state")) === "succeeded", 10_000, "G150 to update");
    const marks = await page.evaluate(() =>
      [...document.querySelectorAll("table.job-groups tbody tr")].map((tr) => [tr.dataset.group, tr.__mark === true, tr.cells[1].firstChild.__mark === true]),
    );
    assert.ok(marks.every(([, row]) => row), "a row was rebuilt");
    assert.deepEqual(marks.filter(([, , badge]) => !badge).map(([name]) => name), ["G150"]);
    assert.match(await moved.textContent(), /verified 20\/20/);
    // The one event re-read its one group, not the 300-group job. (The mocked feed ends after
    // its event, so the page reconnects, and may read the whole job once per reconnection.)
    const reads = counted.of(fake);
    assertFollowedByGroup(reads, "the 300-group job");
    assert.equal(reads.groups, 1, `one event, one group read: ${JSON.stringify(reads)}`);
  } finally {
    counted.stop();
    await page.unroute(`**/v1/jobs/${fake}`);
    await page.unroute(`**/v1/jobs/${fake}/groups/*`);
    await page.unroute(`**/v1/events?job=${fake}*`);
  }
  assert.deepEqual(problems, []);
});

test("a viewer is offered no control, and the server refuses one forced from the page", { timeout: LONG }, async () => {
  assert.ok(firstJob, "the first test made a job");
  const viewer = await openConsole(ferry, await ferry.makeToken("viewer"));
  try {
    const { page, problems } = viewer;
    await open(viewer, `/jobs/${firstJob}`);
    await page.locator("table.job-groups tbody tr[data-group]").first().waitFor();
    for (const name of [/Approve/, /Cancel/, /Pause/, /Resume/, /Retry/]) {
      assert.equal(await page.getByRole("button", { name, includeHidden: true }).count(), 0, `a viewer sees ${name}`);
    }
    assert.equal(await page.getByRole("group", { name: "Job controls" }).count(), 0);
    const status = await page.evaluate(async (id) => {
      const secret = sessionStorage.getItem("ferry.token");
      const response = await fetch(`/v1/jobs/${id}/approve`, {
        method: "POST",
        headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
        body: "{}",
      });
      return response.status;
    }, firstJob);
    assert.equal(status, 403);

    // The jobs list links the job with its groups per state.
    await open(viewer, "/jobs");
    const listed = page.locator("tbody tr", { has: page.locator(`a[href="#/jobs/${firstJob}"]`) });
    assert.match(await listed.textContent(), /succeeded.*2 succeeded.*FS-OLD → FS-NEW/);

    // A viewer may plan, but is not offered Submit.
    await open(viewer, "/plan");
    await page.getByLabel("Source cluster").selectOption("FS-OLD");
    await page.getByLabel("Target cluster").selectOption("FS-NEW");
    await page.getByRole("checkbox", { name: /^FS03\b/ }).check();
    await page.getByRole("button", { name: "Plan", exact: true }).click();
    await page.getByRole("list", { name: "Route" }).waitFor();
    await page.getByText("Viewers may plan; an operator submits the job.").waitFor();
    assert.equal(await page.getByRole("button", { name: "Submit" }).count(), 0);
    assert.deepEqual(problems, []);
  } finally {
    await viewer.close();
  }
});

test("a feed cut by a server restart resumes without missing or repeating an event", { timeout: LONG }, async () => {
  const { page, problems, shot } = admin;
  const created = await ferry.api("POST", "/v1/jobs", {
    source: "FS-OLD",
    target: "FS-NEW",
    name: "restart <b>test</b>",
    groups: ["FS03"],
    disk_mapping: { "Cluster Disk 3": mapping["Cluster Disk 3"] },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const counted = countReads(page);
  await open(admin, `/jobs/${id}`);
  // Names are text: the markup in the job's name shows literally.
  await page.locator("h1.job-title", { hasText: "restart <b>test</b>" }).waitFor();
  await page.evaluate(() => {
    window.__sameDocument = true;
    const feed = document.querySelector(".feed");
    window.__feedHistory = [feed.dataset.feed];
    new MutationObserver(() => window.__feedHistory.push(feed.dataset.feed)).observe(feed, { attributeFilter: ["data-feed"] });
  });
  await page.locator(".feed[data-feed=live]").waitFor();
  await waitFor(async () => (await pageSeqs(page)).length >= 5, 60_000, "the first events on the page");
  const job = await ferry.api("GET", `/v1/jobs/${id}`);
  assert.ok(!["succeeded", "failed", "cancelled"].includes(job.body.state), "the job ended before the restart");

  await ferry.restartServer();

  await waitFor(async () => (await ferry.api("GET", `/v1/jobs/${id}`)).body.state === "succeeded", 180_000, "the job to succeed");
  const expected = await serverSeqs(id);
  assert.ok(expected.length > 20, `the server has ${expected.length} events`);
  await waitFor(async () => (await pageSeqs(page)).length >= expected.length, 30_000, "the page to list every event");
  const shown = await pageSeqs(page);
  assert.equal(new Set(shown).size, shown.length, "an event is listed twice");
  assert.deepEqual([...shown].sort((a, b) => a - b), expected);

  const row = page.locator("table.job-groups tbody tr[data-group=FS03]");
  await waitFor(async () => (await row.getAttribute("data-state")) === "succeeded", 30_000, "the page to show FS03 succeeded");
  assert.match(await row.textContent(), /verified 20\/20/);
  await page.locator("h1.job-title .badge", { hasText: "succeeded" }).waitFor();
  const history = await page.evaluate(() => window.__feedHistory);
  const dropped = history.indexOf("reconnecting");
  assert.ok(dropped >= 0, `the feed never showed reconnecting: ${history}`);
  assert.ok(history.slice(dropped).includes("live"), `the feed did not come back: ${history}`);
  assert.equal(await page.locator(".feed").getAttribute("data-feed"), "live");
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was reloaded");
  // The reconnection read the whole job again; the events otherwise re-read their groups.
  counted.stop();
  const reads = counted.of(id);
  assertFollowedByGroup(reads, "the restarted job");
  assert.ok(reads.feeds >= 2, `the feed did not reconnect: ${JSON.stringify(reads)}`);
  assert.deepEqual(problems, []);
  await shot("job-restarted");
});
