// The console's shell in a real browser: signing in and out, where the token lives, the role,
// the overview and its live events, the audit log, keyboard and narrow windows.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openConsole, presentDisks, startFerry, waitFor } from "./harness.mjs";

let ferry;
before(async () => {
  ferry = await startFerry();
});
after(async () => {
  await ferry?.stop();
});

test("signing in keeps the token in this tab only, and signing out forgets it", async () => {
  const c = await openConsole(ferry, null);
  try {
    const { page } = c;
    await page.getByLabel("API token").fill("fy_not-a-real-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("That token is not valid").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("ferry.token")), null);

    await page.getByLabel("API token").fill(ferry.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("ferry.token"),
      local: Object.keys(localStorage).length,
      cookies: document.cookie,
      url: location.href,
    }));
    assert.equal(stored.session, ferry.token);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookies, "");
    assert.ok(!stored.url.includes(ferry.token), stored.url);
    // The signed-in token's name and role are shown.
    await page.locator(".who .role").getByText("admin").waitFor();
    await c.shot("overview");

    // A reload stays signed in (the same tab), a new tab does not.
    await page.reload();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const other = await page.context().newPage();
    await other.goto(`${ferry.url}/console/`);
    await other.getByLabel("API token").waitFor();
    await other.close();

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("ferry.token")), null);
    assert.deepEqual(c.problems, []);
  } finally {
    await c.close();
  }
});

test("the overview lists the three clusters and five agents, and follows events live", async () => {
  const c = await openConsole(ferry);
  try {
    const { page } = c;
    const main = page.locator("main");
    await main.getByRole("heading", { name: "Overview" }).waitFor();
    const clusters = main.locator("section", { has: page.getByRole("heading", { name: "Clusters" }) });
    for (const [name, os] of [["FS-OLD", "ws2003"], ["FS-MID", "ws2008"], ["FS-NEW", "ws2008r2"]]) {
      const row = clusters.getByRole("row", { name: new RegExp(`^${name}\\b`) });
      await row.waitFor();
      assert.match(await row.innerText(), new RegExp(`${os}\\s+#1`));
    }
    const agents = main.locator("section", { has: page.getByRole("heading", { name: "Agents" }) });
    await waitFor(async () => (await agents.getByRole("row").count()) === 6, 10_000, "five agent rows");
    for (const node of ["FS-OLD-n1", "FS-OLD-n2", "FS-MID-n1", "FS-NEW-n1", "FS-NEW-n2"]) {
      assert.match(await agents.getByRole("row", { name: new RegExp(`^${node}\\b`) }).innerText(), /connected/);
    }
    await page.locator("section[data-feed=live]").waitFor();

    // A job submitted elsewhere shows up without a reload: its events, then the job itself.
    const marker = await page.evaluate(() => ((window).__sameDocument = Math.random()));
    const disk_mapping = await presentDisks(ferry);
    const job = await ferry.api("POST", "/v1/jobs", { source: "FS-OLD", target: "FS-NEW", require_approval: true, disk_mapping });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    const events = main.locator("ol.events li");
    await events.first().waitFor({ timeout: 30_000 });
    await main.getByRole("link", { name: job.body.name }).waitFor({ timeout: 30_000 });
    assert.equal(await page.evaluate(() => (window).__sameDocument), marker, "the page was not reloaded");
    await c.shot("overview-with-job");
    const cancel = await ferry.api("POST", `/v1/jobs/${job.body.id}/cancel`, {});
    assert.ok(cancel.status < 300, JSON.stringify(cancel.body));
    assert.deepEqual(c.problems, []);
  } finally {
    await c.close();
  }
});

test("a revoked token ends the session with a readable message", async () => {
  const secret = await ferry.makeToken("viewer", "console-revoked");
  const c = await openConsole(ferry, secret);
  try {
    const { page } = c;
    await page.locator(".who .role").getByText("viewer").waitFor();
    const tokens = await ferry.api("GET", "/v1/tokens?limit=1000");
    const id = tokens.body.items.find((t) => t.name === "console-revoked").id;
    assert.equal((await ferry.api("DELETE", `/v1/tokens/${id}`)).status, 200);
    await page.getByRole("link", { name: "Audit" }).click();
    await page.getByText("The server no longer accepts this token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("ferry.token")), null);
    assert.deepEqual(c.problems, []);
  } finally {
    await c.close();
  }
});

test("the audit log shows who did what, filtered by the server", async () => {
  const c = await openConsole(ferry);
  try {
    const { page } = c;
    await page.getByRole("link", { name: "Audit" }).click();
    await page.getByRole("heading", { name: "Audit" }).waitFor();
    const rows = page.locator("main tbody tr");
    await rows.first().waitFor();
    assert.ok((await rows.count()) > 3);
    const requests = [];
    page.on("request", (r) => r.url().includes("/v1/audit") && requests.push(new URL(r.url())));
    await page.getByLabel("Action").fill("cluster.create");
    await page.getByRole("button", { name: "Filter" }).click();
    await waitFor(async () => (await rows.count()) === 3, 10_000, "three cluster.create records");
    for (const row of await rows.all()) assert.match(await row.innerText(), /cluster\.create/);
    assert.equal(requests.at(-1)?.searchParams.get("action"), "cluster.create");
    await c.shot("audit");
    assert.deepEqual(c.problems, []);
  } finally {
    await c.close();
  }
});

test("the keyboard reaches every control, and a narrow window does not scroll sideways", async () => {
  const c = await openConsole(ferry, ferry.token, { width: 420, height: 800 });
  try {
    const { page } = c;
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    // Tabbing from the top reaches the navigation and sign-out.
    await page.reload();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const reached = [];
    for (let i = 0; i < 10; i += 1) {
      await page.keyboard.press("Tab");
      reached.push(await page.evaluate(() => document.activeElement?.textContent?.trim()));
    }
    for (const name of ["Overview", "Plan", "Jobs", "Storage", "Audit", "Sign out"]) {
      assert.ok(reached.includes(name), `${name} in ${reached.join(", ")}`);
    }
    // Moving to another page puts the focus on it, as loading a page would.
    await page.getByRole("link", { name: "Audit" }).press("Enter");
    await page.getByRole("heading", { name: "Audit" }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    // A malformed address is no page, not a frozen one.
    await page.evaluate(() => (location.hash = "#/jobs/%E0"));
    await page.getByRole("heading", { name: "No such page" }).waitFor();
    await page.getByRole("link", { name: "Go to the overview" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    await c.shot("overview-narrow");
    assert.deepEqual(c.problems, []);
  } finally {
    await c.close();
  }
});
