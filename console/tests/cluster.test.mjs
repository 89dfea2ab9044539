// The cluster page against a real server: groups with resources and dependencies, shares paged
// by the server, hostile names shown as text, the snapshot diff down to permission entries, and
// Discover now / Validate now offered to operators only.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openConsole, startFerry, waitFor } from "./harness.mjs";

let ferry;
let admin;
let clusters;

before(async () => {
  ferry = await startFerry({ shares: 120 });
  admin = await openConsole(ferry);
  clusters = Object.fromEntries((await ferry.api("GET", "/v1/clusters")).body.items.map((c) => [c.name, c]));
});

after(async () => {
  await admin?.close();
  await ferry?.stop();
});

async function open(route, session = admin) {
  await session.page.goto(`${ferry.url}/console/#${route}`);
  await session.page.locator("main h1").waitFor();
}

/** Creates a cluster and imports `inventory` as its first snapshot. */
async function labCluster(name, inventory) {
  const created = await ferry.api("POST", "/v1/clusters", { name, os: "ws2008r2", description: `lab <i>${name}</i>` });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await importInventory(created.body.id, inventory);
  return created.body;
}

async function importInventory(id, inventory) {
  const put = await ferry.api("PUT", `/v1/clusters/${id}/inventory`, inventory);
  assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
  return put.body;
}

function labInventory(shares) {
  return {
    nodes: [{ name: "LAB-n1", address: "10.9.0.11" }],
    disks: [{ resource: "Disk F:", drive_letter: "F:", size_bytes: 1 << 30, free_bytes: 1 << 29 }],
    groups: [
      {
        name: "LAB-FS1",
        owner_node: "LAB-n1",
        state: "online",
        resources: [
          { name: "Disk F:", kind: "physical_disk", state: "online" },
          { name: "LAB-FS1 Name", kind: "network_name", state: "online" },
          { name: "LAB-FS1 Server", kind: "file_server", state: "online", depends_on: ["Disk F:", "LAB-FS1 Name"] },
        ],
        shares,
      },
    ],
  };
}

test("groups show resources and dependencies; shares are paged and searched by the server", async () => {
  const { page, problems, shot } = admin;
  const old = clusters["FS-OLD"];
  await open(`/clusters/${old.id}`);
  assert.equal(await page.locator("main h1").textContent(), "FS-OLD");
  const tabs = page.locator("main .tabs a");
  assert.deepEqual(await tabs.allTextContents(), ["Groups", "Shares", "Snapshots", "Agents", "Validations"]);
  assert.equal(await page.getByRole("link", { name: "Groups", exact: true }).getAttribute("aria-current"), "page");
  assert.equal(await page.getByRole("link", { name: "Snapshots" }).getAttribute("href"), `#/clusters/${old.id}/snapshots`);

  // Three groups; the first is open with its resources, each with what it depends on.
  const groups = page.locator("details.group");
  await waitFor(async () => (await groups.count()) === 3, 10_000, "three groups");
  assert.deepEqual(await page.locator("details.group .group-name").allTextContents(), ["FS01", "FS02", "FS03"]);
  const fs01 = page.locator('details.group[data-group="FS01"]');
  const resourceRow = (group, name) =>
    group.locator("table.resources > tbody > tr").filter({ has: page.locator("td:first-child", { hasText: new RegExp(`^${name}$`) }) });
  const server = resourceRow(fs01, "FS01 File Server");
  await server.waitFor();
  assert.match(await server.textContent(), /File server/);
  assert.match(await server.textContent(), /→ Cluster Disk 1/);
  assert.match(await server.textContent(), /→ FS01 Network Name/);
  // Dependencies come before what depends on them.
  const order = await fs01.locator("table.resources tbody tr td:first-child").allTextContents();
  assert.ok(order.indexOf("FS01 IP Address") < order.indexOf("FS01 Network Name"));
  assert.ok(order.indexOf("FS01 Network Name") < order.indexOf("FS01 File Server"));
  // Its 120 share resources are summed up in one row, and listed only when asked.
  const summaryRow = fs01.locator("tr.share-summary");
  assert.match(await summaryRow.textContent(), /120 file share resources/);
  assert.match(await summaryRow.textContent(), /→ FS01 File Server/);
  await shot("cluster-groups");
  await fs01.getByRole("button", { name: "List the 120 share resources" }).click();
  await waitFor(async () => (await fs01.locator('table.resources tr[data-kind="file_share"]').count()) === 120, 5_000, "the share resources");
  // Another group's detail loads when it is opened, by keyboard too.
  const fs02 = page.locator('details.group[data-group="FS02"]');
  await fs02.locator("summary").focus();
  await page.keyboard.press("Enter");
  await resourceRow(fs02, "FS02 Network Name").waitFor();

  // Shares: 120 in FS01, so two server pages of at most 100.
  const requests = [];
  page.on("request", (request) => {
    if (/\/v1\/groups\/[^/]+\/shares/.test(request.url())) requests.push(new URL(request.url()));
  });
  await page.getByRole("link", { name: "Shares", exact: true }).click();
  const rows = page.locator("table.shares > tbody > tr");
  await waitFor(async () => (await rows.count()) === 100, 10_000, "the first page of 100 shares");
  assert.equal(await page.getByRole("link", { name: "Shares", exact: true }).getAttribute("aria-current"), "page");
  assert.equal(await page.getByLabel("Group").inputValue(), (await ferry.api("GET", `/v1/clusters/${old.id}/groups`)).body.items[0].id);
  const firstPage = await page.locator("table.shares .share-name").allTextContents();
  await shot("cluster-shares");
  await page.getByRole("button", { name: "Next" }).click();
  await waitFor(async () => (await rows.count()) === 20, 10_000, "the second page of 20 shares");
  const secondPage = await page.locator("table.shares .share-name").allTextContents();
  assert.equal(new Set([...firstPage, ...secondPage]).size, 120);
  await page.getByRole("button", { name: "Previous" }).click();
  await waitFor(async () => (await rows.count()) === 100, 10_000, "the first page again");
  assert.deepEqual(await page.locator("table.shares .share-name").allTextContents(), firstPage);

  assert.ok(requests.length >= 3);
  for (const url of requests) assert.equal(url.searchParams.get("limit"), "100", url.href);
  assert.equal(requests[0].searchParams.get("cursor"), null);
  assert.ok(requests[1].searchParams.get("cursor"), "Next asks for the next cursor");
  assert.equal(requests[2].searchParams.get("cursor"), null, "Previous goes back to the first page");

  // A name-prefix search is answered by the server with the matching shares only.
  const prefix = firstPage[0].slice(0, 3);
  const all = [...firstPage, ...secondPage];
  const expected = all.filter((n) => n.toLowerCase().startsWith(prefix.toLowerCase())).sort();
  assert.ok(expected.length < all.length);
  requests.length = 0;
  await page.getByLabel("Name starts with").fill(prefix);
  await page.getByRole("button", { name: "Search" }).click();
  await waitFor(async () => (await rows.count()) === expected.length, 10_000, "the matching shares");
  assert.deepEqual((await page.locator("table.shares .share-name").allTextContents()).sort(), expected);
  assert.equal(requests.at(-1).searchParams.get("name_prefix"), prefix);
  assert.equal(requests.at(-1).searchParams.get("limit"), "100");
  // The search is in the URL, so a reload lands on it.
  assert.match(decodeURIComponent(page.url()), new RegExp(`name_prefix=${prefix.replace(/[^\w]/g, ".")}`));

  // A principal filter too: one that nobody has finds nothing.
  await page.getByLabel("Name starts with").fill("");
  await page.getByLabel("Has an entry for principal").fill("CORP\\Nobody");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No share matches.").waitFor();
  assert.equal(requests.at(-1).searchParams.get("principal"), "CORP\\Nobody");
  assert.deepEqual(problems, []);
});

test("hostile share names, descriptions and principals show as text and run nothing", async () => {
  const { page, problems, shot } = admin;
  const lab = await labCluster("XSS-LAB", labInventory([
    {
      name: "<img src=x onerror=alert(1)>",
      path: "F:\\Shares\\x",
      description: "<script>alert(2)</script>",
      permissions: [
        { principal: "CORP\\<b>bold</b>", type: "allow", access: "full" },
        { principal: "Everyone", type: "deny", access: "change" },
      ],
      caching: "none",
      access_based_enumeration: true,
    },
    { name: "Plain", path: "F:\\Shares\\plain", permissions: [{ principal: "CORP\\<b>bold</b>", type: "allow", access: "read" }] },
  ]));
  await open(`/clusters/${lab.id}/shares`);
  const row = page.locator("table.shares > tbody > tr", { hasText: "<img src=x onerror=alert(1)>" });
  await row.waitFor();
  assert.equal(await row.locator(".share-name").textContent(), "<img src=x onerror=alert(1)>");
  assert.equal(await row.locator(".share-description").textContent(), "<script>alert(2)</script>");
  assert.equal(await row.locator(".principal").first().textContent(), "CORP\\<b>bold</b>");
  assert.match(await row.textContent(), /deny/);
  assert.match(await row.textContent(), /access-based enumeration/);
  assert.equal(await page.locator("main img, main script, main b").count(), 0);
  // The cluster's description is text too.
  assert.equal(await page.locator(".cluster-description").textContent(), "lab <i>XSS-LAB</i>");
  assert.equal(await page.locator("main i").count(), 0);

  // The principal filter takes the hostile principal literally.
  await page.getByLabel("Has an entry for principal").fill("CORP\\<b>bold</b>");
  await page.getByRole("button", { name: "Search" }).click();
  await waitFor(async () => (await page.locator("table.shares > tbody > tr").count()) === 2, 10_000, "both shares");
  await shot("cluster-shares-hostile");

  // The groups and snapshot tabs show the same names as text.
  await page.getByRole("link", { name: "Snapshots" }).click();
  await page.locator("table.snapshots").waitFor();
  await page.getByRole("link", { name: "Groups", exact: true }).click();
  await page.locator("table.resources").waitFor();
  assert.equal(await page.locator("main img, main script, main b").count(), 0);
  // An injected image would be requested and fail (firing its onerror): none was ever asked for,
  // and every image the document holds has settled, so nothing is left to fire.
  await waitFor(() => page.evaluate(() => [...document.images].every((img) => img.complete)), 5_000, "every image to load or fail");
  const asked = await page.evaluate(() => performance.getEntriesByType("resource").map((entry) => new URL(entry.name).pathname));
  assert.ok(!asked.some((path) => path.endsWith("/x")), `an injected image was requested: ${asked.join(", ")}`);
  assert.deepEqual(problems, []);
});

test("the diff between two snapshots shows added, removed and changed down to the permission entry", async () => {
  const { page, problems, shot } = admin;
  const share = (name, access = "read") => ({
    name,
    path: `F:\\Shares\\${name}`,
    description: `${name} team`,
    permissions: [
      { principal: "BUILTIN\\Administrators", type: "allow", access: "full" },
      { principal: "CORP\\Finance", type: "allow", access },
    ],
  });
  const lab = await labCluster("DIFF-LAB", labInventory([share("Alpha"), share("Bravo"), share("Charlie")]));
  // Version 2: Delta added, Charlie removed, Alpha's CORP\Finance entry from read to full.
  await importInventory(lab.id, labInventory([share("Alpha", "full"), share("Bravo"), share("Delta")]));

  await open(`/clusters/${lab.id}/snapshots`);
  await page.locator("table.snapshots").waitFor();
  assert.equal(await page.locator("table.snapshots > tbody > tr").count(), 2);
  // The page compares the newest two on its own.
  assert.equal(await page.getByLabel("From snapshot").inputValue(), "1");
  assert.equal(await page.getByLabel("To snapshot").inputValue(), "2");
  const changes = page.locator("table.diff > tbody > tr");
  await changes.first().waitFor();

  const added = changes.filter({ hasText: "Delta" });
  assert.equal(await added.getAttribute("data-op"), "added");
  assert.equal(await added.getAttribute("data-kind"), "share");
  assert.match(await added.textContent(), /CORP\\Finance/);
  const removed = changes.filter({ hasText: "Charlie" });
  assert.equal(await removed.getAttribute("data-op"), "removed");
  assert.equal(await removed.getAttribute("data-kind"), "share");
  const changed = page.locator('table.diff > tbody > tr[data-kind="permission"]');
  assert.equal(await changed.count(), 1);
  assert.equal(await changed.getAttribute("data-op"), "changed");
  assert.match(await changed.textContent(), /share Alpha/);
  assert.match(await changed.textContent(), /CORP\\Finance:allow/);
  assert.match(await changed.textContent(), /access: read → full/);
  const summary = await page.locator(".diff-summary").textContent();
  assert.match(summary, /1 added/);
  assert.match(summary, /1 removed/);
  assert.match(summary, /1 changed/);
  const counts = await page.locator(".diff-counts").textContent();
  assert.match(counts, /shares/);
  assert.match(counts, /permission entries/);
  await shot("cluster-snapshots-diff");

  // Filtering by change keeps only that kind of row.
  await page.getByLabel("Show").selectOption("added");
  await waitFor(async () => (await changes.count()) === 1, 5_000, "only the added share");

  // Any two can be compared, including backwards.
  await page.getByLabel("From snapshot").fill("2");
  await page.getByLabel("To snapshot").fill("1");
  await page.getByRole("button", { name: "Compare" }).click();
  await page.getByRole("heading", { name: "From #2 to #1" }).waitFor();
  assert.equal(await changes.filter({ hasText: "Charlie" }).getAttribute("data-op"), "added");
  // A snapshot that does not exist is a problem shown readably.
  await page.getByLabel("To snapshot").fill("9");
  await page.getByRole("button", { name: "Compare" }).click();
  await page.locator(".diff-view .problem").waitFor();
  assert.deepEqual(problems, []);
});

test("operators discover and validate; a viewer is not offered either", async () => {
  const { page, problems, shot } = admin;
  const old = clusters["FS-OLD"];
  await open(`/clusters/${old.id}/agents`);
  const agents = page.locator("table.agents > tbody > tr");
  await waitFor(async () => (await agents.count()) === 2, 10_000, "FS-OLD's two agents");
  assert.deepEqual((await page.locator("table.agents > tbody > tr > td:first-child").allTextContents()).sort(), ["FS-OLD-n1", "FS-OLD-n2"]);
  assert.match(await agents.first().textContent(), /connected/);
  assert.match(await agents.first().textContent(), /read_inventory/);
  await shot("cluster-agents");

  await page.getByRole("button", { name: "Discover now" }).click();
  await page.getByText(/Discovery completed/).waitFor({ timeout: 60_000 });
  assert.match(await page.locator(".cluster-outcome").textContent(), /nothing changed, snapshot #1/);

  await page.getByRole("button", { name: "Validate now" }).click();
  await page.waitForURL(/\/validations\?validation=/, { timeout: 60_000 });
  const findings = page.locator("li.finding");
  await findings.first().waitFor({ timeout: 30_000 });
  assert.equal(await page.getByRole("link", { name: "Validations" }).getAttribute("aria-current"), "page");
  const verdicts = await findings.evaluateAll((items) => items.map((li) => li.getAttribute("data-verdict")));
  assert.ok(verdicts.length > 3);
  assert.ok(verdicts.every((v) => ["pass", "warn", "fail", "unknown"].includes(v)));
  assert.ok(verdicts.includes("pass"));
  const remedy = page.locator("li.finding .remedy pre code").first();
  assert.match(await remedy.textContent(), /Get-/);
  assert.equal(await page.locator("table.validations > tbody > tr").count(), 1);
  await shot("cluster-validations");

  // Filter by verdict.
  const someVerdict = verdicts.find((v) => v !== "pass");
  await page.getByLabel("Show findings").selectOption(someVerdict);
  const filtered = await findings.evaluateAll((items) => items.map((li) => li.getAttribute("data-verdict")));
  assert.deepEqual(filtered, verdicts.filter((v) => v === someVerdict));
  assert.deepEqual(problems, []);

  // A viewer sees the same page without the operator's buttons.
  const viewer = await openConsole(ferry, await ferry.makeToken("viewer"));
  try {
    await open(`/clusters/${old.id}/validations`, viewer);
    await viewer.page.locator("li.finding").first().waitFor();
    assert.equal(await viewer.page.getByRole("button", { name: "Discover now" }).count(), 0);
    assert.equal(await viewer.page.getByRole("button", { name: "Validate now" }).count(), 0);
    // Narrow window: the page still reads, tables scroll inside their box.
    await viewer.page.setViewportSize({ width: 420, height: 800 });
    await open(`/clusters/${old.id}/shares`, viewer);
    await viewer.page.locator("table.shares > tbody > tr").first().waitFor();
    const overflow = await viewer.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    await viewer.shot("cluster-shares-narrow");
    assert.deepEqual(viewer.problems, []);
  } finally {
    await viewer.close();
  }
});
